"""Policies for recording: the ``Policy`` protocol, a spec-exact ``RandomPolicy``, and lookup.

A policy maps a ``dm_env.TimeStep`` to an action that conforms exactly to the environment's
action spec (dtype, shape, nesting, bounds), so recorded actions round-trip unchanged.
"""

from __future__ import annotations

import string
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import dm_env
import numpy as np
from dm_env import specs

from rlds_hub.envs.experts import EXPERTS
from rlds_hub.envs.registry import canonical_env_name

__all__ = ["Policy", "RandomPolicy", "list_policies", "make_policy"]

_Sampler = Callable[[np.random.Generator], Any]
_TEXT_ALPHABET = np.array(list(string.ascii_letters + string.digits))
_MAX_TEXT_LENGTH = 8


@runtime_checkable
class Policy(Protocol):
    """Maps timesteps to actions; ``reset()`` is called at the start of every episode."""

    def __call__(self, timestep: dm_env.TimeStep) -> Any:
        """Returns the action to take after ``timestep``."""
        ...

    def reset(self) -> None:
        """Clears any per-episode state."""
        ...


class RandomPolicy:
    """Uniformly random actions that match ``action_spec`` exactly.

    Bounded leaves are sampled uniformly within their (inclusive) bounds; ``DiscreteArray``
    gives a 0-d integer array; unbounded float leaves are standard normal (half-normal from the
    finite side when one bound is infinite); unbounded integer leaves cover the dtype's range;
    string leaves are 1-8 random alphanumeric characters (Gymnasium Text's default charset;
    a spec carries no length limits). Dict and tuple nests are preserved.
    """

    def __init__(self, action_spec: Any, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self._sample = _sampler(action_spec)

    def reset(self) -> None:
        """Random actions have no per-episode state."""

    def __call__(self, timestep: dm_env.TimeStep) -> Any:
        """Returns a fresh random action (``timestep`` is ignored)."""
        del timestep
        return self._sample(self._rng)


def _sampler(spec: Any) -> _Sampler:
    """Builds a sampler for a spec or a dict / tuple / list nest of specs (no dm-tree)."""
    if isinstance(spec, Mapping):
        items = [(key, _sampler(sub)) for key, sub in spec.items()]
        kind = type(spec) if type(spec) in (dict, OrderedDict) else dict
        return lambda rng: kind((key, sample(rng)) for key, sample in items)
    if isinstance(spec, tuple | list):
        subs = [_sampler(sub) for sub in spec]
        kind = type(spec)
        return lambda rng: kind(sample(rng) for sample in subs)
    if isinstance(spec, specs.StringArray):
        return _string_sampler(spec)
    if isinstance(spec, specs.Array):
        leaf = (
            _bounded_sampler(spec)
            if isinstance(spec, specs.BoundedArray)
            else _unbounded_sampler(spec)
        )
        dtype = spec.dtype
        # NumPy ufuncs turn 0-d arrays into scalars; always hand back arrays of the spec's dtype.
        return lambda rng: np.asarray(leaf(rng), dtype=dtype)
    raise TypeError(f"RandomPolicy cannot sample from {spec!r}: expected dm_env specs.")


def _string_sampler(spec: specs.StringArray) -> _Sampler:
    size = int(np.prod(spec.shape))

    def sample(rng: np.random.Generator) -> np.ndarray:
        lengths = rng.integers(1, _MAX_TEXT_LENGTH, size=size, endpoint=True)
        words = ["".join(rng.choice(_TEXT_ALPHABET, size=n)) for n in lengths]
        if spec.string_type is bytes:
            words = [w.encode() for w in words]
        out = np.empty(size, dtype=object)
        out[:] = words
        return out.reshape(spec.shape)

    return sample


def _bounded_sampler(spec: specs.BoundedArray) -> _Sampler:
    dtype, shape = spec.dtype, spec.shape
    low = np.broadcast_to(spec.minimum, shape)
    high = np.broadcast_to(spec.maximum, shape)
    if dtype == np.bool_:
        # BoundedArray stores bool bounds; sample each element between them.
        return lambda rng: np.where(low == high, low, rng.integers(0, 2, size=shape).astype(bool))
    if np.issubdtype(dtype, np.integer):
        return lambda rng: rng.integers(low, high, size=shape, dtype=dtype, endpoint=True)
    low64, high64 = low.astype(np.float64), high.astype(np.float64)
    finite_low, finite_high = np.isfinite(low64), np.isfinite(high64)
    both = finite_low & finite_high
    if both.all():

        def uniform(rng: np.random.Generator) -> np.ndarray:
            u = rng.random(shape)
            # Convex combination: no overflow even for bounds near the dtype's limits.
            value = (low64 * (1.0 - u) + high64 * u).astype(dtype)
            return np.clip(value, low, high)

        return uniform
    safe_low = np.where(finite_low, low64, 0.0)
    safe_high = np.where(finite_high, high64, 0.0)

    def mixed(rng: np.random.Generator) -> np.ndarray:
        u = rng.random(shape)
        normal = rng.standard_normal(shape)
        value = np.where(
            both,
            safe_low * (1.0 - u) + safe_high * u,
            np.where(
                finite_low,
                safe_low + np.abs(normal),
                np.where(finite_high, safe_high - np.abs(normal), normal),
            ),
        )
        return np.clip(value.astype(dtype), low, high)

    return mixed


def _unbounded_sampler(spec: specs.Array) -> _Sampler:
    dtype, shape = spec.dtype, spec.shape
    if dtype == np.bool_:
        return lambda rng: rng.integers(0, 2, size=shape).astype(bool)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return lambda rng: rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    if np.issubdtype(dtype, np.floating):
        return lambda rng: rng.standard_normal(shape).astype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        return lambda rng: (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(
            dtype
        )
    raise TypeError(f"RandomPolicy cannot sample dtype {dtype} for {spec!r}.")


def list_policies(env_name: str) -> list[str]:
    """The policy names ``make_policy`` accepts for ``env_name`` (``random``, maybe ``expert``)."""
    names = ["random"]
    if _canonical_or_none(env_name) in EXPERTS:
        names.append("expert")
    return names


def make_policy(
    name: str, env_name: str, env: dm_env.Environment, *, seed: int | None = None
) -> Policy:
    """Returns policy ``name`` (``random`` or ``expert``) for the env ``env_name``.

    Raises:
      ValueError: for an unknown policy name, or ``expert`` on an env without a scripted expert.
    """
    if name == "random":
        return RandomPolicy(env.action_spec(), seed=seed)
    if name == "expert":
        canonical = _canonical_or_none(env_name)
        if canonical not in EXPERTS:
            raise ValueError(
                f"no scripted expert for env {env_name!r}; envs with experts: "
                f"{', '.join(sorted(EXPERTS))}."
            )
        return EXPERTS[canonical](env, seed)
    raise ValueError(
        f"unknown policy {name!r}; available for {env_name!r}: "
        f"{', '.join(list_policies(env_name))}."
    )


def _canonical_or_none(env_name: str) -> str | None:
    try:
        return canonical_env_name(env_name)
    except ValueError:
        return None
