"""EnvironmentWrapper: a ``dm_env.Environment`` that forwards everything to the one it wraps.

The base of every wrapper in rlds_hub (the Recorder, the learners' deployment shifts), after
Acme's and envlogger's ``EnvironmentWrapper``: a subclass overrides only what it changes.
"""

from __future__ import annotations

from typing import Any

import dm_env


class EnvironmentWrapper(dm_env.Environment):
    """Forwards ``reset``, ``step``, the four specs, ``close`` and every other public
    attribute (e.g. a dm_control env's ``physics``) to ``env``."""

    def __init__(self, env: dm_env.Environment):
        self._env = env

    @property
    def environment(self) -> dm_env.Environment:
        """The wrapped environment."""
        return self._env

    def reset(self) -> dm_env.TimeStep:
        return self._env.reset()

    def step(self, action: Any) -> dm_env.TimeStep:
        return self._env.step(action)

    def observation_spec(self) -> Any:
        return self._env.observation_spec()

    def action_spec(self) -> Any:
        return self._env.action_spec()

    def reward_spec(self) -> Any:
        return self._env.reward_spec()

    def discount_spec(self) -> Any:
        return self._env.discount_spec()

    def close(self) -> None:
        self._env.close()

    def __getattr__(self, name: str) -> Any:
        # Private names are not forwarded: a wrapper's own state must never silently
        # resolve to the wrapped env's (and `_env` itself, before __init__ sets it).
        if name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self._env, name)
