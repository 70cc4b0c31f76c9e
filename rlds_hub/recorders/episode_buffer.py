"""Per-episode step buffers: validate each value against its spec and copy it into place.

Values are copied into preallocated arrays (one per leaf of the nested specs), so an
environment that mutates the arrays it returned cannot corrupt the recording, and the
episode is contiguous when it ends. The common case (an ndarray of exactly the spec's dtype
and shape) costs one type check and one copy; everything else goes through a slow path that
accepts only value-preserving conversions and otherwise raises a :class:`SpecError` naming
the field, the step and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from dm_env import specs as dm_specs

from rlds_hub import spec as rlds
from rlds_hub.features import SpecError

_INITIAL_CAPACITY = 256


class _ArrayLeaf:
    """A growable buffer for one numeric leaf: ``buffer[t]`` holds the value at step t."""

    __slots__ = ("buffer", "dtype", "path", "shape")

    def __init__(self, path: str, shape: tuple[int, ...], dtype: np.dtype, capacity: int):
        self.path = path
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.buffer = np.zeros((capacity, *self.shape), self.dtype)

    def put(self, t: int, value: Any) -> None:
        if value.__class__ is np.ndarray and value.dtype is self.dtype and value.shape == self.shape:
            self.buffer[t] = value
        else:
            self.buffer[t] = coerce(value, self.shape, self.dtype, self.path)

    def zero(self, t: int) -> None:
        self.buffer[t] = 0

    def grow(self, capacity: int) -> None:
        grown = np.zeros((capacity, *self.shape), self.dtype)
        grown[: len(self.buffer)] = self.buffer
        self.buffer = grown

    def values(self, length: int) -> np.ndarray:
        return self.buffer[:length]


class _ScalarLeaf(_ArrayLeaf):
    """A shape-() numeric leaf with a fast path for Python and NumPy scalars (rewards)."""

    __slots__ = ("_python_type", "_scalar_type")

    def __init__(self, path: str, dtype: np.dtype, capacity: int):
        super().__init__(path, (), dtype, capacity)
        self._scalar_type = self.dtype.type
        kind = self.dtype
        self._python_type = {np.dtype(np.float64): float, np.dtype(np.bool_): bool}.get(kind)

    def put(self, t: int, value: Any) -> None:
        cls = value.__class__
        if cls is self._scalar_type or cls is self._python_type:
            self.buffer[t] = value
        else:
            self.buffer[t] = coerce(value, (), self.dtype, self.path)


class _StringLeaf:
    """Strings (or arrays of strings) kept as Python objects until the episode ends."""

    __slots__ = ("buffer", "path", "shape", "string_type")

    def __init__(self, path: str, shape: tuple[int, ...], string_type: type, capacity: int):
        self.path = path
        self.shape = tuple(shape)
        self.string_type = string_type
        self.buffer: list[Any] = [None] * capacity

    def put(self, t: int, value: Any) -> None:
        array = np.asarray(value, dtype=object)
        if array.shape != self.shape:
            raise SpecError(f"{self.path}: shape {array.shape} does not match {self.shape}")
        for item in array.ravel():
            if not isinstance(item, (str, bytes)):
                raise SpecError(f"{self.path}: expected strings, got {type(item).__name__}")
        self.buffer[t] = array[()] if array.ndim == 0 else array

    def zero(self, t: int) -> None:
        self.buffer[t] = b"" if not self.shape else np.full(self.shape, b"", dtype=object)

    def grow(self, capacity: int) -> None:
        self.buffer.extend([None] * (capacity - len(self.buffer)))

    def values(self, length: int) -> np.ndarray:
        out = np.empty((length, *self.shape), dtype=object)
        for t in range(length):
            out[t] = self.buffer[t]
        return out


def coerce(value: Any, shape: tuple[int, ...], dtype: np.dtype, path: str) -> np.ndarray:
    """``value`` as an array of ``dtype``/``shape`` if that conversion preserves every value."""
    array = np.asarray(value)
    if array.shape != shape:
        raise SpecError(
            f"{path}: shape {array.shape} does not match the spec's {shape} "
            "(the environment or policy produced a value that does not fit its spec)"
        )
    if array.dtype == dtype:
        return array
    if isinstance(value, (np.ndarray, np.generic)):
        if np.can_cast(array.dtype, dtype, "safe"):
            return array.astype(dtype)
        raise SpecError(
            f"{path}: dtype {array.dtype} does not match the spec's {dtype}; storing it "
            f"would change values. Produce {dtype} (e.g. .astype(np.{dtype.name})) or fix the spec"
        )
    converted = array.astype(dtype)
    same = converted.astype(array.dtype) == array
    if array.dtype.kind in "fc":
        same |= np.isnan(array)
    if not np.all(same):
        raise SpecError(f"{path}: value {value!r} cannot be stored as {dtype} exactly")
    return converted


def _leaves(spec: Any, path: str, capacity: int) -> Any:
    """A structure mirroring ``spec`` with a leaf buffer at every array spec."""
    if isinstance(spec, dm_specs.StringArray):
        return _StringLeaf(path, spec.shape, spec.string_type, capacity)
    if isinstance(spec, dm_specs.Array):
        if spec.shape == ():
            return _ScalarLeaf(path, spec.dtype, capacity)
        return _ArrayLeaf(path, spec.shape, spec.dtype, capacity)
    if isinstance(spec, Mapping):
        return {k: _leaves(v, f"{path}/{k}", capacity) for k, v in spec.items()}
    if isinstance(spec, (tuple, list)):
        return tuple(_leaves(v, f"{path}/{i}", capacity) for i, v in enumerate(spec))
    raise SpecError(f"{path}: unsupported spec {spec!r}")


def _flat(structure: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(key, leaf) pairs with TFDS's flattened keys (tuples as "0", "1", ...)."""
    if isinstance(structure, dict):
        return [p for k, v in structure.items() for p in _flat(v, f"{prefix}/{k}" if prefix else k)]
    if isinstance(structure, tuple):
        return [p for i, v in enumerate(structure) for p in _flat(v, f"{prefix}/{i}")]
    return [(prefix, structure)]


def _putter(structure: Any, path: str):
    """A function ``put(t, value)`` that validates nesting and fills the leaves."""
    if isinstance(structure, (_ArrayLeaf, _StringLeaf)):
        return structure.put
    if isinstance(structure, dict):
        children = [(k, _putter(v, f"{path}/{k}")) for k, v in structure.items()]
        expected = set(structure)

        def put_dict(t: int, value: Any) -> None:
            if not isinstance(value, Mapping) or len(value) != len(children):
                _structure_error(value, expected, path)
            try:
                for key, put in children:
                    put(t, value[key])
            except KeyError:
                _structure_error(value, expected, path)

        return put_dict
    items = [_putter(v, f"{path}/{i}") for i, v in enumerate(structure)]

    def put_tuple(t: int, value: Any) -> None:
        if not isinstance(value, (tuple, list)) or len(value) != len(items):
            raise SpecError(
                f"{path}: expected a sequence of {len(items)} values, got {type(value).__name__}"
            )
        for put, item in zip(items, value, strict=True):
            put(t, item)

    return put_tuple


def _structure_error(value: Any, expected: set[str], where: str) -> None:
    if not isinstance(value, Mapping):
        raise SpecError(
            f"{where}: expected a dict with keys {sorted(expected)}, got {type(value).__name__}"
        )
    got = set(map(str, value))
    raise SpecError(
        f"{where}: keys {sorted(got)} do not match the spec's {sorted(expected)} "
        f"(missing {sorted(expected - got)}, unexpected {sorted(got - expected)})"
    )


class Field:
    """One field (observation, action, a metadata key, ...) buffered over an episode."""

    def __init__(self, name: str, spec: Any, capacity: int, prefix: str = rlds.STEPS):
        self.name = name
        self.structure = _leaves(spec, name, capacity)
        self.leaves = _flat(self.structure, f"{prefix}/{name}" if prefix else name)
        self.put = _putter(self.structure, name)

    def zero(self, t: int) -> None:
        for _, leaf in self.leaves:
            leaf.zero(t)

    def grow(self, capacity: int) -> None:
        for _, leaf in self.leaves:
            leaf.grow(capacity)

    def values(self, length: int) -> dict[str, np.ndarray]:
        return {key: leaf.values(length) for key, leaf in self.leaves}


class EpisodeBuffer:
    """Buffers one episode in SAR alignment: step t holds o_t, a_t, r_t, d_t, metadata_t."""

    def __init__(
        self,
        *,
        observation_spec: Any,
        action_spec: Any,
        reward_spec: Any,
        discount_spec: Any,
        step_metadata_spec: Mapping[str, Any] | None = None,
    ):
        self._capacity = _INITIAL_CAPACITY
        self.observation = Field(rlds.OBSERVATION, observation_spec, self._capacity)
        self.action = Field(rlds.ACTION, action_spec, self._capacity)
        self.reward = Field(rlds.REWARD, reward_spec, self._capacity)
        self.discount = Field(rlds.DISCOUNT, discount_spec, self._capacity)
        self.metadata: list[Field] = []
        self.step_metadata_spec: dict[str, Any] | None = None
        if step_metadata_spec is not None:
            self.set_step_metadata_spec(step_metadata_spec)
        self.num_transitions = 0  # T: the episode so far has T + 1 steps
        self.episode_index = 0
        self.active = False
        self._put_action = self.action.put
        self._put_reward = self.reward.put
        self._put_discount = self.discount.put
        self._put_observation = self.observation.put

    def set_step_metadata_spec(self, spec: Mapping[str, Any]) -> None:
        """Declares the step metadata fields (once, before the first step that has them)."""
        self.step_metadata_spec = dict(spec)
        self.metadata = [Field(key, value, self._capacity) for key, value in spec.items()]

    def _context(self, error: SpecError) -> SpecError:
        return SpecError(f"episode {self.episode_index}, step {self.num_transitions}: {error}")

    def start(self, observation: Any) -> None:
        """Begins an episode with its first observation o_0."""
        self.num_transitions = 0
        try:
            self.observation.put(0, observation)
        except SpecError as e:
            raise self._context(e) from None
        self.active = True

    def put_action(self, action: Any) -> None:
        """Validates and stores a_t (before the environment steps)."""
        try:
            self._put_action(self.num_transitions, action)
        except SpecError as e:
            raise self._context(e) from None

    def add_step(self, reward: Any, discount: Any, observation: Any, metadata: Any) -> None:
        """Stores r_t, d_t and metadata_t for the pending action a_t, and o_{t+1}."""
        t = self.num_transitions
        if t + 2 > self._capacity:
            self._grow(max(2 * self._capacity, t + 2))
        try:
            self._put_reward(t, reward)
            self._put_discount(t, discount)
            if self.metadata:
                if not isinstance(metadata, Mapping):
                    raise SpecError(f"step_fn returned {type(metadata).__name__}, not a dict")
                if len(metadata) != len(self.metadata):
                    extra = sorted(set(map(str, metadata)) - {f.name for f in self.metadata})
                    raise SpecError(f"step_fn returned keys {extra} that its first result lacked")
                for field in self.metadata:
                    if field.name not in metadata:
                        raise SpecError(f"step_fn's result has no key {field.name!r}")
                    field.put(t, metadata[field.name])
            elif metadata is not None and self.step_metadata_spec is not None:
                raise SpecError("step_fn returned a value, but its first result was empty")
            self._put_observation(t + 1, observation)
        except SpecError as e:
            raise self._context(e) from None
        self.num_transitions = t + 1

    def _grow(self, capacity: int) -> None:
        for field in (self.observation, self.action, self.reward, self.discount, *self.metadata):
            field.grow(capacity)
        self._capacity = capacity

    def finish(self, terminal: bool) -> dict[str, np.ndarray]:
        """Ends the episode: returns flattened step arrays (views) of its T + 1 steps."""
        length = self.num_transitions + 1
        for field in (self.action, self.reward, self.discount, *self.metadata):
            field.zero(length - 1)
        steps: dict[str, np.ndarray] = {}
        for field in (self.observation, self.action, self.reward, self.discount, *self.metadata):
            steps.update(field.values(length))
        flags = np.zeros((3, length), dtype=np.bool_)
        flags[0, 0] = True
        flags[1, -1] = True
        flags[2, -1] = terminal
        steps[f"{rlds.STEPS}/{rlds.IS_FIRST}"] = flags[0]
        steps[f"{rlds.STEPS}/{rlds.IS_LAST}"] = flags[1]
        steps[f"{rlds.STEPS}/{rlds.IS_TERMINAL}"] = flags[2]
        self.active = False
        self.episode_index += 1
        return steps

    def discard(self) -> None:
        """Drops the episode in progress."""
        self.active = False
        self.num_transitions = 0


def conform(name: str, spec: Any, value: Any) -> dict[str, np.ndarray]:
    """Validates one episode-level value against ``spec``; returns its flattened leaves."""
    field = Field(name, spec, 1, prefix="")
    field.put(0, value)
    return {key: leaf_values[0] for key, leaf_values in field.values(1).items()}
