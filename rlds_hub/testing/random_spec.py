"""An environment that emits random values of any spec and logs them.

``RandomSpecEnv`` returns random *bit patterns* (NaN payloads, infinities, signed zeros,
subnormals, extreme integers, non-ASCII strings), so a recording compared bit for bit with
its log proves the storage lossless for every dtype.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import dm_env
import numpy as np
from dm_env import specs

_ALPHABET = np.array(list("abcxyz019 _-éßж漢😀\t"), dtype=object)


def random_value(spec: Any, rng: np.random.Generator) -> Any:
    """A random value matching ``spec`` exactly (random bits for numbers)."""
    if isinstance(spec, specs.StringArray):

        def one() -> Any:
            text = "".join(rng.choice(_ALPHABET, size=int(rng.integers(0, 6))))
            return text.encode() if spec.string_type is bytes else text

        if spec.shape == ():
            return one()
        out = np.empty(spec.shape, dtype=object)
        for index in np.ndindex(spec.shape):
            out[index] = one()
        return out
    if isinstance(spec, specs.Array):
        dtype = np.dtype(spec.dtype)
        if dtype == np.bool_:
            return rng.integers(0, 2, size=spec.shape).astype(np.bool_)
        size = int(np.prod(spec.shape, dtype=np.int64)) * dtype.itemsize
        raw = rng.integers(0, 256, size=size, dtype=np.uint8)
        return raw.view(dtype).reshape(spec.shape).copy()
    if isinstance(spec, Mapping):
        return {k: random_value(v, rng) for k, v in spec.items()}
    if isinstance(spec, (tuple, list)):
        return tuple(random_value(v, rng) for v in spec)
    raise TypeError(f"unsupported spec {spec!r}")


class RandomSpecEnv(dm_env.Environment):
    """A dm_env whose observations, rewards and discounts are random values of its specs.

    Episode ``i`` has ``episode_lengths[i % len]`` transitions and ends in a termination
    (discount 0) when ``terminate[i % len]`` is true, else in a truncation (non-zero
    discount). Every timestep returned is logged (deep-copied) in ``episodes``.
    """

    def __init__(
        self,
        observation_spec: Any,
        action_spec: Any = None,
        *,
        reward_spec: Any = None,
        discount_spec: Any = None,
        episode_lengths: Sequence[int] = (5,),
        terminate: Sequence[bool] = (False,),
        seed: int = 0,
    ):
        self._observation_spec = observation_spec
        self._action_spec = action_spec or specs.BoundedArray((2,), np.float32, -1.0, 1.0)
        self._reward_spec = reward_spec or specs.Array((), np.float64, name="reward")
        self._discount_spec = discount_spec or specs.BoundedArray(
            (), np.float64, 0.0, 1.0, name="discount"
        )
        self._lengths = list(episode_lengths)
        self._terminate = list(terminate)
        self._rng = np.random.default_rng(seed)
        self._episode = -1
        self._t = 0
        self.episodes: list[list[dm_env.TimeStep]] = []
        self.actions: list[list[Any]] = []

    def reset(self) -> dm_env.TimeStep:
        self._episode += 1
        self._t = 0
        timestep = dm_env.restart(random_value(self._observation_spec, self._rng))
        self.episodes.append([copy.deepcopy(timestep)])
        self.actions.append([])
        return timestep

    def step(self, action: Any) -> dm_env.TimeStep:
        self._t += 1
        self.actions[-1].append(copy.deepcopy(action))
        observation = random_value(self._observation_spec, self._rng)
        reward = random_value(self._reward_spec, self._rng)
        length = self._lengths[self._episode % len(self._lengths)]
        if self._t >= length:
            step_type = dm_env.StepType.LAST
            if self._terminate[self._episode % len(self._terminate)]:
                discount = _zeros_like_spec(self._discount_spec)
            else:
                discount = self._nonzero_discount()
        else:
            discount = random_value(self._discount_spec, self._rng)
            step_type = dm_env.StepType.MID
        timestep = dm_env.TimeStep(step_type, reward, discount, observation)
        self.episodes[-1].append(copy.deepcopy(timestep))
        return timestep

    def _nonzero_discount(self) -> Any:
        while True:
            value = random_value(self._discount_spec, self._rng)
            if np.all(np.asarray(value) != 0):
                return value

    def observation_spec(self) -> Any:
        return self._observation_spec

    def action_spec(self) -> Any:
        return self._action_spec

    def reward_spec(self) -> Any:
        return self._reward_spec

    def discount_spec(self) -> Any:
        return self._discount_spec


def _zeros_like_spec(spec: Any) -> Any:
    return np.zeros(spec.shape, dtype=spec.dtype)
