"""Fake dm_env environments whose every value is known, for tests.

- :class:`CounterEnv`: a tiny point-mass-like task; episode lengths, endings, observations,
  rewards and discounts are functions of (episode, step) the test chooses.
- :class:`FramesEnv`: image observations whose pixels encode (episode, step), with a NaN and
  an infinite return.
- :func:`nested_env`: random bit patterns in nested observations (an image among them).
- :class:`FailingEnv`: an environment that raises at a chosen reset or step.
- :class:`~rlds_hub.testing.random_spec.RandomSpecEnv`: random values of any spec, logged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dm_env
import numpy as np
from dm_env import specs

from rlds_hub.envs.wrapper import EnvironmentWrapper
from rlds_hub.testing.random_spec import RandomSpecEnv

FRAME = 24  # FramesEnv's images are FRAME x FRAME x 3

NESTED_SPEC = {
    "position": specs.Array((3,), np.float64, "position"),
    "camera": specs.Array((6, 5, 3), np.uint8, "camera"),
    "count": specs.Array((), np.int32, "count"),
    "flags": specs.Array((2,), np.bool_, "flags"),
}


def _counter(episode: int, t: int) -> np.ndarray:
    return np.full(1, t, np.float32)


class CounterEnv(dm_env.Environment):
    """Episode ``e`` (from 0) has ``lengths[e % len(lengths)]`` transitions and ends in a
    termination when ``terminate[e % len(terminate)]``, else in a truncation.

    After ``t`` steps of episode ``e`` the observation is ``observation(e, t)`` (default: a
    float32 vector ``[t]``); step ``t`` gets ``reward(e, t)`` (computed before its
    observation; default 1.0) and ``discount`` (0 on a termination). ``episode`` and ``t``
    are the current episode and step, ``stepped`` the steps taken in all.
    """

    def __init__(
        self,
        lengths: Sequence[int] = (3,),
        *,
        terminate: Sequence[bool] = (True,),
        observation: Callable[[int, int], Any] = _counter,
        observation_spec: Any = None,
        reward: Callable[[int, int], float] = lambda episode, t: 1.0,
        discount: float = 1.0,
        action_spec: Any = None,
    ):
        self.lengths, self.terminate = tuple(lengths), tuple(terminate)
        self._observation, self._reward, self._discount = observation, reward, discount
        self._observation_spec = (
            specs.Array((1,), np.float32) if observation_spec is None else observation_spec
        )
        self._action_spec = (
            specs.BoundedArray((), np.float32, -1.0, 1.0) if action_spec is None else action_spec
        )
        self.episode, self.t, self.stepped = -1, 0, 0

    def reset(self) -> dm_env.TimeStep:
        self.episode, self.t = self.episode + 1, 0
        return dm_env.restart(self._observation(self.episode, 0))

    def step(self, action: Any) -> dm_env.TimeStep:
        self.t += 1
        self.stepped += 1
        reward = self._reward(self.episode, self.t)
        observation = self._observation(self.episode, self.t)
        if self.t >= self.lengths[self.episode % len(self.lengths)]:
            if self.terminate[self.episode % len(self.terminate)]:
                return dm_env.termination(reward, observation)
            return dm_env.truncation(reward, observation, self._discount)
        return dm_env.transition(reward, observation, self._discount)

    def observation_spec(self) -> Any:
        return self._observation_spec

    def action_spec(self) -> Any:
        return self._action_spec


class FramesEnv(dm_env.Environment):
    """Image observations whose pixels encode (episode, step), a 2-d vector, and rewards
    that make episode 0's return NaN and episode 1's +inf (the rest finite)."""

    def __init__(self, lengths: tuple[int, ...] = (6, 9, 4, 7, 5)):
        self.lengths = lengths
        self.episode, self.t = -1, 0

    def _obs(self) -> dict[str, np.ndarray]:
        image = np.zeros((FRAME, FRAME, 3), np.uint8)
        image[..., 0] = self.t * 10
        image[..., 1] = self.episode * 40
        image[: self.t + 1, :, 2] = 255
        return {"image": image, "position": np.array([self.t, -self.t], np.float32)}

    def reset(self) -> dm_env.TimeStep:
        self.episode += 1
        self.t = 0
        return dm_env.restart(self._obs())

    def step(self, action: np.ndarray) -> dm_env.TimeStep:
        self.t += 1
        reward = 1.0 + 0.25 * self.t
        if self.episode == 0 and self.t == 2:
            reward = float("nan")
        if self.episode == 1 and self.t == 3:
            reward = float("inf")
        if self.t >= self.lengths[self.episode % len(self.lengths)]:
            if self.episode % 2:
                return dm_env.termination(reward, self._obs())
            return dm_env.truncation(reward, self._obs(), 0.99)
        return dm_env.transition(reward, self._obs(), 0.99)

    def observation_spec(self) -> dict[str, specs.Array]:
        return {
            "image": specs.Array((FRAME, FRAME, 3), np.uint8, name="image"),
            "position": specs.Array((2,), np.float32, name="position"),
        }

    def action_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray((1,), np.float32, -1.0, 1.0)

    def reward_spec(self) -> specs.Array:
        return specs.Array((), np.float64, name="reward")


def nested_env(
    lengths: Sequence[int] = (4, 7, 2, 5),
    terminate: Sequence[bool] = (True, False),
    seed: int = 0,
) -> RandomSpecEnv:
    """Random bit patterns in nested observations (:data:`NESTED_SPEC`: a vector, an image,
    an integer, flags), float32 actions of shape (2,); its log holds every value."""
    return RandomSpecEnv(NESTED_SPEC, episode_lengths=lengths, terminate=terminate, seed=seed)


class FailingEnv(EnvironmentWrapper):
    """``env``, except that reset number ``at_reset`` (from 0) or step number ``at_step``
    (counted over all episodes, from 1) raises ``error``."""

    def __init__(
        self,
        env: dm_env.Environment,
        *,
        at_reset: int | None = None,
        at_step: int | None = None,
        error: Exception | None = None,
    ):
        if at_reset is None and at_step is None:
            raise ValueError("FailingEnv needs at_reset or at_step: where should it fail?")
        super().__init__(env)
        self._at_reset, self._at_step = at_reset, at_step
        self._error = error or RuntimeError("the simulator failed")
        self.resets, self.steps = 0, 0

    def reset(self) -> dm_env.TimeStep:
        self.resets += 1
        if self.resets - 1 == self._at_reset:
            raise self._error
        return self._env.reset()

    def step(self, action: Any) -> dm_env.TimeStep:
        self.steps += 1
        if self.steps == self._at_step:
            raise self._error
        return self._env.step(action)
