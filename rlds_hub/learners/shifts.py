"""Deployment shifts for evaluating imitation under conditions the demonstrations lack.

- :class:`ActionNoise`: Gaussian noise added to every action the policy takes (then clipped
  to the bounds) — the agent is pushed off the expert's states step after step.
- :class:`InitialStateShift`: dm_control episodes start from perturbed physics states (each
  ``qpos`` / ``qvel`` element offset by a random amount of random sign, between a minimum
  and a maximum magnitude), outside the narrow start distribution of the demonstrations.

Both are ``dm_env`` wrappers. A shift is described by a JSON-able dict
(``{"action_noise": 0.3}``, ``{"qpos_offset": [[0.5, 1.0], [0.6, 1.2]]}``) so that
benchmarks and the CLI name it the same way; :func:`apply_shift` builds the wrappers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dm_env
import numpy as np

from rlds_hub.envs.wrapper import EnvironmentWrapper
from rlds_hub.learners.errors import LearnerError

SHIFT_KEYS = ("action_noise", "qpos_offset", "qvel_offset")


class ActionNoise(EnvironmentWrapper):
    """Adds N(0, (scale * half-range)^2) noise to each action element, clipped to bounds."""

    def __init__(self, env: dm_env.Environment, scale: float, seed: int | None = None):
        super().__init__(env)
        spec = env.action_spec()
        if not hasattr(spec, "minimum") or not np.issubdtype(spec.dtype, np.floating):
            raise LearnerError("action noise needs a bounded float action spec")
        self._low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float64)
        self._high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float64)
        self._sigma = scale * (self._high - self._low) / 2
        self._dtype = spec.dtype
        self._rng = np.random.default_rng(seed)

    def step(self, action: Any) -> dm_env.TimeStep:
        noisy = np.asarray(action, np.float64) + self._sigma * self._rng.standard_normal(
            self._low.shape
        )
        return self._env.step(np.clip(noisy, self._low, self._high).astype(self._dtype))


class InitialStateShift(EnvironmentWrapper):
    """Starts each episode of a dm_control task from a perturbed physics state.

    ``qpos_offset`` / ``qvel_offset``: one ``[min, max]`` magnitude per element (or None to
    leave the element alone); each episode adds ``±U(min, max)`` with a random sign.
    """

    def __init__(
        self,
        env: dm_env.Environment,
        *,
        qpos_offset: Sequence[Any] | None = None,
        qvel_offset: Sequence[Any] | None = None,
        seed: int | None = None,
    ):
        super().__init__(env)
        base = getattr(env, "physics", None)
        if base is None or not hasattr(env, "task"):
            raise LearnerError("initial-state shifts need a dm_control environment")
        self._qpos = _ranges(qpos_offset, base.data.qpos.shape[0], "qpos_offset")
        self._qvel = _ranges(qvel_offset, base.data.qvel.shape[0], "qvel_offset")
        self._rng = np.random.default_rng(seed)

    def reset(self) -> dm_env.TimeStep:
        timestep = self._env.reset()
        physics = self._env.physics
        # Offsets from the task's own initial state (not physics.reset_context(), which
        # first resets the model to its default pose).
        for values, ranges in ((physics.data.qpos, self._qpos), (physics.data.qvel, self._qvel)):
            for i, bounds in enumerate(ranges):
                if bounds is not None:
                    magnitude = self._rng.uniform(*bounds)
                    values[i] += magnitude * self._rng.choice((-1.0, 1.0))
        physics.forward()
        observation = self._env.task.get_observation(physics)
        return timestep._replace(observation=observation)


def _ranges(offsets: Sequence[Any] | None, size: int, name: str) -> list[Any]:
    if offsets is None:
        return [None] * size
    if len(offsets) != size:
        raise LearnerError(f"{name} needs {size} entries ([min, max] or null), got {len(offsets)}")
    out = []
    for item in offsets:
        if item is None:
            out.append(None)
            continue
        low, high = (float(v) for v in item)
        if not 0 <= low <= high:
            raise LearnerError(f"{name}: each range is [min, max] with 0 <= min <= max")
        out.append((low, high))
    return out


def check_shift(shift: Mapping[str, Any] | None) -> dict[str, Any]:
    shift = dict(shift or {})
    unknown = sorted(set(shift) - set(SHIFT_KEYS))
    if unknown:
        raise LearnerError(f"unknown shift option(s) {unknown}; the options are {list(SHIFT_KEYS)}")
    return shift


def apply_shift(
    env: dm_env.Environment,
    shift: Mapping[str, Any] | None,
    seed: int | None,
    *,
    record: Any = None,
) -> dm_env.Environment:
    """``env`` with the shift's wrappers; ``record(env) -> env`` (a Recorder) goes between
    the initial-state shift (recorded) and the action noise (the noisy action is what the
    recorder stores, as the environment executed it)."""
    shift = check_shift(shift)
    if shift.get("qpos_offset") is not None or shift.get("qvel_offset") is not None:
        env = InitialStateShift(
            env,
            qpos_offset=shift.get("qpos_offset"),
            qvel_offset=shift.get("qvel_offset"),
            seed=seed,
        )
    if record is not None:
        env = record(env)
    if shift.get("action_noise"):
        env = ActionNoise(
            env, float(shift["action_noise"]), seed=None if seed is None else seed + 7919
        )
    return env
