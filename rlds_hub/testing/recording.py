"""One way for tests to record episodes: :func:`record`, with rlds_hub's own Recorder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dm_env
import numpy as np

from rlds_hub.recorders import Recorder


def zeros_like_spec(spec: Any) -> Any:
    """Zeros shaped like a (nested) dm_env spec."""
    if isinstance(spec, Mapping):
        return {key: zeros_like_spec(value) for key, value in spec.items()}
    if isinstance(spec, (tuple, list)):
        return type(spec)(zeros_like_spec(value) for value in spec)
    return np.zeros(spec.shape, spec.dtype)


def _actor(policy: Any, env: dm_env.Environment, env_name: str | None, seed: int) -> Any:
    """``policy`` as a callable ``timestep -> action``."""
    if policy is None:
        action = zeros_like_spec(env.action_spec())
        return lambda timestep: action
    if isinstance(policy, str):
        if env_name is None:
            raise ValueError(
                f"policy {policy!r} is a name, which needs the env's name: pass "
                "env_name=... (or record a registered env by name)"
            )
        from rlds_hub.envs import make_policy

        return make_policy(policy, env_name, env, seed=seed)
    if callable(policy):
        return policy
    return lambda timestep: policy  # a constant action


def record(
    env_or_name: dm_env.Environment | str,
    path: str | os.PathLike,
    *,
    episodes: int = 2,
    seed: int = 0,
    policy: Any = None,
    max_steps: int | None = None,
    **options: Any,
) -> dm_env.Environment:
    """Records ``episodes`` episodes into the dataset directory ``path``; returns the
    environment (a :class:`~rlds_hub.testing.RandomSpecEnv` logs every value it produced).

    Args:
      env_or_name: a ``dm_env.Environment``, or a registered name (``make_env(name,
        seed=seed)``, recorded with ``env_name=name`` and ``seed=seed``).
      path: the dataset directory (appended to when it holds a dataset).
      episodes: how many episodes to record.
      seed: the seed of a named env and of a named policy.
      policy: ``None`` (zero actions), a constant action (an array), a callable
        ``timestep -> action`` (its ``reset()``, if any, is called before each episode) or
        a policy name (``random``, ``expert``: ``make_policy``, recorded as ``policy_name``).
      max_steps: cut an episode after this many steps (the Recorder stores it unfinished).
      **options: the Recorder's own keyword arguments (``split``, ``step_fn``,
        ``episode_fn``, ``file_format``, ``max_episodes_per_shard``, ...).
    """
    if isinstance(env_or_name, str):
        from rlds_hub.envs import make_env

        env = make_env(env_or_name, seed=seed)
        options = {"env_name": env_or_name, "seed": seed, **options}
    else:
        env = env_or_name
    if isinstance(policy, str):
        options = {"policy_name": policy, **options}
    actor = _actor(policy, env, options.get("env_name"), seed)
    with Recorder(env, path, **options) as recorder:
        for _ in range(episodes):
            timestep = recorder.reset()
            if hasattr(actor, "reset"):
                actor.reset()
            steps = 0
            while not timestep.last() and (max_steps is None or steps < max_steps):
                timestep = recorder.step(actor(timestep))
                steps += 1
    return env
