"""Gymnasium → dm_env adapter: ``GymnasiumEnv`` makes any ``gymnasium.Env`` a ``dm_env.Environment``.

Specs are derived once from the gym spaces (Box, Discrete, MultiDiscrete, MultiBinary, Text,
and Dict / Tuple nests of them). Observations are returned with exactly the spec's dtype and
shape, so what the recorder writes is what the environment produced, bit for bit. Flat Box
observation and action spaces take a fast path with no per-leaf dispatch.

This module must not import TensorFlow: it is used by JAX-only code and by the demo tasks.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dm_env
import gymnasium as gym
import numpy as np
from dm_env import specs

__all__ = ["GymnasiumEnv", "spec_from_space"]

_SUPPORTED = "Box, Discrete, MultiDiscrete, MultiBinary, Text, and Dict / Tuple nests of them"
# Shared, immutable discount scalars (NumPy scalars cannot be mutated, so sharing is safe).
_ONE = np.float64(1.0)
_ZERO = np.float64(0.0)
_FIRST, _MID, _LAST = dm_env.StepType.FIRST, dm_env.StepType.MID, dm_env.StepType.LAST
_TimeStep = dm_env.TimeStep
# ``tuple.__new__(TimeStep, ...)`` builds the same namedtuple at a third of the cost of
# ``TimeStep(...)`` (no keyword handling); it matters at ~1 us per step.
_tuple_new = tuple.__new__
_ndarray = np.ndarray
_float64 = np.float64

Spec = Any  # a dm_env spec or a dict / tuple nest of them
Converter = Callable[[Any], Any]


def spec_from_space(space: gym.Space, name: str) -> Spec:
    """Returns the dm_env spec (or dict / tuple nest of specs) that describes ``space``.

    Raises:
      TypeError: for spaces with no fixed-shape dm_env equivalent (Graph, Sequence, OneOf, ...).
    """
    if isinstance(space, gym.spaces.Box):
        return specs.BoundedArray(space.shape, space.dtype, space.low, space.high, name=name)
    if isinstance(space, gym.spaces.Discrete):
        start, n = int(space.start), int(space.n)
        if start == 0:
            return specs.DiscreteArray(n, dtype=space.dtype, name=name)
        return specs.BoundedArray((), space.dtype, start, start + n - 1, name=name)
    if isinstance(space, gym.spaces.MultiDiscrete):
        low = np.asarray(space.start, dtype=space.dtype)
        high = low + np.asarray(space.nvec, dtype=space.dtype) - 1
        return specs.BoundedArray(space.nvec.shape, space.dtype, low, high, name=name)
    if isinstance(space, gym.spaces.MultiBinary):
        return specs.BoundedArray(space.shape, np.int8, 0, 1, name=name)
    if isinstance(space, gym.spaces.Text):
        return specs.StringArray((), string_type=str, name=name)
    if isinstance(space, gym.spaces.Dict):
        return {key: spec_from_space(sub, str(key)) for key, sub in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(spec_from_space(sub, str(i)) for i, sub in enumerate(space.spaces))
    raise TypeError(
        f"GymnasiumEnv cannot describe the {name} space {space!r} ({type(space).__name__}) "
        f"as a dm_env spec; supported spaces: {_SUPPORTED}."
    )


def _is_flat_box(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box)


class GymnasiumEnv(dm_env.Environment):
    """A ``dm_env.Environment`` view of a ``gymnasium.Env``.

    ``terminated`` ends the episode with discount 0 (``dm_env.termination``); ``truncated``
    (and not terminated) ends it with discount 1 (``dm_env.truncation``). Rewards and discounts
    are ``np.float64`` scalars, matching ``reward_spec()`` and ``discount_spec()``.

    Args:
      gym_env: the environment to adapt (``gymnasium.make(...)`` or any ``gymnasium.Env``).
      seed: passed to the first ``gym_env.reset(seed=...)`` only; later resets pass no seed,
        so a seeded run is reproducible as a whole.
      cast_observations: cast observations whose dtype differs from their space's dtype (an env
        bug, e.g. float64 arrays for a float32 Box) to the space's dtype instead of raising.
        The cast may lose precision.
    """

    def __init__(
        self, gym_env: gym.Env, *, seed: int | None = None, cast_observations: bool = False
    ) -> None:
        self._gym_env = gym_env
        self._seed = seed
        self._seeded = False
        self._cast_observations = cast_observations
        self._env_name = _env_name(gym_env)
        self._reset_next_step = True
        self._last_info: dict[str, Any] = {}

        obs_space, act_space = gym_env.observation_space, gym_env.action_space
        self._observation_spec = spec_from_space(obs_space, "observation")
        self._action_spec = spec_from_space(act_space, "action")
        self._convert_obs = self._obs_converter(obs_space, "observation")
        self._action_to_gym = _action_converter(act_space)

        # Fast paths for flat Box spaces: one dtype/shape check per step, no dispatch.
        self._flat_obs = _is_flat_box(obs_space)
        self._obs_dtype = np.dtype(obs_space.dtype) if self._flat_obs else None
        self._obs_shape = tuple(obs_space.shape) if self._flat_obs else None
        self._flat_action = _is_flat_box(act_space)
        self._action_dtype = np.dtype(act_space.dtype) if self._flat_action else None
        self._gym_step = gym_env.step

    # -- dm_env.Environment ----------------------------------------------------------------

    def reset(self) -> dm_env.TimeStep:
        """Resets the gym env (with ``seed`` the first time only); returns a FIRST timestep."""
        if self._seeded:
            obs, info = self._gym_env.reset()
        else:
            obs, info = self._gym_env.reset(seed=self._seed)
            self._seeded = True
        self._last_info = info
        self._reset_next_step = False
        return _TimeStep(_FIRST, None, None, self._convert_obs(obs))

    def step(self, action: Any) -> dm_env.TimeStep:
        """Steps the gym env with ``action`` (a value of ``action_spec()``).

        After a LAST timestep, follows the dm_env convention and resets instead.
        """
        if self._reset_next_step:
            return self.reset()
        if self._flat_action:
            dtype = self._action_dtype
            if action.__class__ is not _ndarray or action.dtype is not dtype:
                action = np.asarray(action, dtype=dtype)
        else:
            action = self._action_to_gym(action)
        obs, reward, terminated, truncated, info = self._gym_step(action)
        self._last_info = info
        if not (
            self._flat_obs
            and obs.__class__ is _ndarray
            and obs.dtype is self._obs_dtype
            and obs.shape == self._obs_shape
        ):
            obs = self._convert_obs(obs)
        if terminated:
            self._reset_next_step = True
            return _tuple_new(_TimeStep, (_LAST, _float64(reward), _ZERO, obs))
        if truncated:
            self._reset_next_step = True
            return _tuple_new(_TimeStep, (_LAST, _float64(reward), _ONE, obs))
        return _tuple_new(_TimeStep, (_MID, _float64(reward), _ONE, obs))

    def observation_spec(self) -> Spec:
        """The observation spec derived from ``gym_env.observation_space``."""
        return self._observation_spec

    def action_spec(self) -> Spec:
        """The action spec derived from ``gym_env.action_space``."""
        return self._action_spec

    def close(self) -> None:
        """Closes the wrapped gym env."""
        self._gym_env.close()

    # -- extras ----------------------------------------------------------------------------

    @property
    def gym_env(self) -> gym.Env:
        """The wrapped ``gymnasium.Env``."""
        return self._gym_env

    @property
    def last_info(self) -> dict[str, Any]:
        """The ``info`` dict returned by the last reset or step (for recording gym infos)."""
        return self._last_info

    def __repr__(self) -> str:
        return f"GymnasiumEnv({self._env_name})"

    # -- observation conversion --------------------------------------------------------------

    def _obs_converter(self, space: gym.Space, path: str) -> Converter:
        """Builds a function mapping a raw gym observation of ``space`` to the spec's arrays."""
        if isinstance(space, gym.spaces.Dict):
            items = [
                (key, self._obs_converter(sub, f"{path}[{key!r}]"))
                for key, sub in space.spaces.items()
            ]
            keys = set(space.spaces)

            def convert_dict(value: Any) -> dict[str, Any]:
                if not isinstance(value, Mapping) or set(value) != keys:
                    got = sorted(value) if isinstance(value, Mapping) else type(value).__name__
                    raise ValueError(
                        f"{self._env_name}: {path} should be a dict with keys "
                        f"{sorted(keys)}, got {got}."
                    )
                return {key: convert(value[key]) for key, convert in items}

            return convert_dict
        if isinstance(space, gym.spaces.Tuple):
            subs = [self._obs_converter(sub, f"{path}[{i}]") for i, sub in enumerate(space.spaces)]

            def convert_tuple(value: Any) -> tuple[Any, ...]:
                if not isinstance(value, Sequence) or len(value) != len(subs):
                    raise ValueError(
                        f"{self._env_name}: {path} should be a tuple of {len(subs)} "
                        f"values, got {type(value).__name__} {value!r}."
                    )
                return tuple(convert(item) for convert, item in zip(subs, value, strict=True))

            return convert_tuple
        if isinstance(space, gym.spaces.Text):

            def convert_text(value: Any) -> np.ndarray:
                if isinstance(value, np.ndarray) and value.shape == ():
                    value = value.item()
                if not isinstance(value, str):
                    raise ValueError(
                        f"{self._env_name}: {path} should be a str for {space!r}, "
                        f"got {type(value).__name__}."
                    )
                return np.array(value, dtype=object)

            return convert_text
        if isinstance(space, gym.spaces.MultiBinary):
            return self._array_converter(path, np.dtype(np.int8), tuple(space.shape), False)
        if isinstance(space, gym.spaces.Discrete):
            return self._array_converter(path, np.dtype(space.dtype), (), True)
        if isinstance(space, gym.spaces.MultiDiscrete | gym.spaces.Box):
            return self._array_converter(path, np.dtype(space.dtype), tuple(space.shape), False)
        raise TypeError(f"unsupported space {space!r}; supported: {_SUPPORTED}.")

    def _array_converter(
        self, path: str, dtype: np.dtype, shape: tuple[int, ...], any_integer: bool
    ) -> Converter:
        """A leaf converter: checks dtype (strictly, unless casting) and shape.

        ``any_integer`` accepts every integer dtype (Discrete values are conventionally Python
        ints or NumPy integers of any width, as ``Discrete.contains`` allows).
        """
        env_name, cast = self._env_name, self._cast_observations

        def convert(value: Any) -> np.ndarray:
            if isinstance(value, np.ndarray | np.generic):
                mismatch = value.dtype != dtype and not (
                    any_integer and np.issubdtype(value.dtype, np.integer)
                )
                if mismatch and not cast:
                    raise ValueError(
                        f"{env_name}: {path} has dtype {value.dtype} but its space "
                        f"declares {dtype} (an environment bug). Fix the environment, or "
                        f"pass GymnasiumEnv(..., cast_observations=True) to cast it to "
                        f"{dtype}, which may lose precision."
                    )
            elif any_integer and not isinstance(value, numbers.Integral):
                raise ValueError(
                    f"{env_name}: {path} should be an integer for a Discrete space, got "
                    f"{type(value).__name__} {value!r}."
                )
            # Python scalars and lists are converted too, as gym's own `contains` does.
            array = np.asarray(value, dtype=dtype)
            if array.shape != shape:
                raise ValueError(
                    f"{env_name}: {path} has shape {array.shape} but its space declares {shape}."
                )
            return array

        return convert


def _action_converter(space: gym.Space) -> Converter:
    """Builds a function mapping a dm_env action (arrays) to what ``space`` expects."""
    if isinstance(space, gym.spaces.Discrete):
        return int
    if isinstance(space, gym.spaces.Box | gym.spaces.MultiDiscrete | gym.spaces.MultiBinary):
        dtype = np.dtype(space.dtype)
        return lambda action: np.asarray(action, dtype=dtype)
    if isinstance(space, gym.spaces.Text):
        return lambda action: action if isinstance(action, str) else str(np.asarray(action).item())
    if isinstance(space, gym.spaces.Dict):
        items = [(key, _action_converter(sub)) for key, sub in space.spaces.items()]
        return lambda action: {key: convert(action[key]) for key, convert in items}
    if isinstance(space, gym.spaces.Tuple):
        subs = [_action_converter(sub) for sub in space.spaces]
        return lambda action: tuple(
            convert(item) for convert, item in zip(subs, action, strict=True)
        )
    raise TypeError(f"unsupported action space {space!r}; supported: {_SUPPORTED}.")


def _env_name(gym_env: gym.Env) -> str:
    """A human-readable name for error messages: the registered id, else the class name."""
    env_spec = getattr(gym_env, "spec", None)
    if env_spec is not None and getattr(env_spec, "id", None):
        return str(env_spec.id)
    return type(getattr(gym_env, "unwrapped", gym_env)).__name__
