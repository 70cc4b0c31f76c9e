"""Per-episode step buffers: validate each value against its spec and copy it into place.

Values are copied into preallocated blocks of rows (one series of blocks per leaf of the
nested specs), so an environment that mutates the arrays it returned cannot corrupt the
recording, and a long episode grows by adding blocks, never by copying what it holds. The
common case (an ndarray of exactly the spec's dtype and shape) costs one type check and one
copy; everything else goes through a slow path that accepts only value-preserving conversions
and otherwise raises a :class:`SpecError` naming the field, the step and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from dm_env import specs as dm_specs

from rlds_hub import rlds_types as rlds
from rlds_hub.format.specs import SpecError

_FIRST_BLOCK_ROWS = 256
_MAX_BLOCK_BYTES = 8 * 2**20  # later blocks double up to this size (all leaves together)
_STRING_ROW_BYTES = 64  # a guess, for block sizing only


class _ArrayLeaf:
    """Rows of one numeric leaf: ``block[i]`` is row ``i`` of the current block.

    Rows are copied through a flat ``memoryview`` of the block: assigning a slice of it
    costs about a third of NumPy's ``block[i] = value``, and it refuses (``ValueError`` /
    ``TypeError``) any value whose dtype or 1-D shape differs, which then takes the checked
    path. Leaves of two or more dimensions use NumPy assignment after an explicit check.
    """

    __slots__ = ("_first", "_flat", "_n", "block", "done", "dtype", "path", "shape")

    def __init__(self, path: str, shape: tuple[int, ...], dtype: np.dtype):
        self.path = path
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self._n = int(np.prod(self.shape, dtype=np.int64))
        self._first: np.ndarray | None = None
        self.done: list[np.ndarray] = []
        self._use(np.empty((0, *self.shape), self.dtype))

    def _use(self, block: np.ndarray) -> None:
        self.block = block
        self._flat = None
        if len(self.shape) <= 1 and self.dtype.kind != "c":  # memoryview cannot copy complex
            self._flat = memoryview(block.reshape(-1))

    @property
    def row_bytes(self) -> int:
        return self.dtype.itemsize * self._n

    def put(self, i: int, value: Any) -> None:
        flat = self._flat
        if flat is not None:
            n = self._n
            try:
                flat[i * n : i * n + n] = value
                return
            except (TypeError, ValueError, NotImplementedError):
                pass
        elif (
            value.__class__ is np.ndarray
            and value.dtype is self.dtype
            and value.shape == self.shape
        ):
            self.block[i] = value
            return
        self.block[i] = coerce(value, self.shape, self.dtype, self.path)

    def zero(self, i: int) -> None:
        self.block[i] = 0

    def reset(self, rows: int) -> None:
        if self._first is None or len(self._first) != rows:
            self._first = np.empty((rows, *self.shape), self.dtype)
        self._use(self._first)
        self.done = []

    def new_block(self, rows: int) -> None:
        self.done.append(self.block)
        self._use(np.empty((rows, *self.shape), self.dtype))

    def column(self, rows_in_last: int) -> list[np.ndarray]:
        """The episode's rows as a list of arrays (blocks; the last one trimmed)."""
        return [*self.done, self.block[:rows_in_last]]


class _ScalarLeaf(_ArrayLeaf):
    """A shape-() numeric leaf with a fast path for Python and NumPy scalars (rewards)."""

    __slots__ = ("_python_type", "_scalar_type")

    def __init__(self, path: str, dtype: np.dtype):
        super().__init__(path, (), dtype)
        self._scalar_type = self.dtype.type
        kind = self.dtype
        self._python_type = {np.dtype(np.float64): float, np.dtype(np.bool_): bool}.get(kind)

    def _use(self, block: np.ndarray) -> None:
        super()._use(block)
        if self._flat is not None and self.dtype == np.float16:
            self._flat = None  # memoryview has no item access for half floats

    def put(self, i: int, value: Any) -> None:
        cls = value.__class__
        if (cls is self._scalar_type or cls is self._python_type) and self._flat is not None:
            self._flat[i] = value
        else:
            self.block[i] = coerce(value, (), self.dtype, self.path)


class _StringLeaf:
    """Strings (or arrays of strings) kept as Python objects until the episode ends."""

    __slots__ = ("block", "done", "path", "shape", "string_type")

    def __init__(self, path: str, shape: tuple[int, ...], string_type: type):
        self.path = path
        self.shape = tuple(shape)
        self.string_type = string_type
        self.block: list[Any] = []
        self.done: list[list[Any]] = []

    @property
    def row_bytes(self) -> int:
        return _STRING_ROW_BYTES * int(np.prod(self.shape, dtype=np.int64))

    def put(self, i: int, value: Any) -> None:
        array = np.asarray(value, dtype=object)
        if array.shape != self.shape:
            raise SpecError(f"{self.path}: shape {array.shape} does not match {self.shape}")
        for item in array.ravel():
            if not isinstance(item, (str, bytes)):
                raise SpecError(f"{self.path}: expected strings, got {type(item).__name__}")
        self.block[i] = array[()] if array.ndim == 0 else array

    def zero(self, i: int) -> None:
        self.block[i] = b"" if not self.shape else np.full(self.shape, b"", dtype=object)

    def reset(self, rows: int) -> None:
        self.block = [None] * rows
        self.done = []

    def new_block(self, rows: int) -> None:
        self.done.append(self.block)
        self.block = [None] * rows

    def column(self, rows_in_last: int) -> list[np.ndarray]:
        rows = [row for block in self.done for row in block] + self.block[:rows_in_last]
        out = np.empty((len(rows), *self.shape), dtype=object)
        for t, row in enumerate(rows):
            out[t] = row
        return [out]


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


def _leaves(spec: Any, path: str) -> Any:
    """A structure mirroring ``spec`` with a leaf buffer at every array spec."""
    if isinstance(spec, dm_specs.StringArray):
        return _StringLeaf(path, spec.shape, spec.string_type)
    if isinstance(spec, dm_specs.Array):
        if spec.shape == ():
            return _ScalarLeaf(path, spec.dtype)
        return _ArrayLeaf(path, spec.shape, spec.dtype)
    if isinstance(spec, Mapping):
        return {k: _leaves(v, f"{path}/{k}") for k, v in spec.items()}
    if isinstance(spec, (tuple, list)):
        return tuple(_leaves(v, f"{path}/{i}") for i, v in enumerate(spec))
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

    def __init__(self, name: str, spec: Any, prefix: str = rlds.STEPS):
        self.name = name
        self.structure = _leaves(spec, name)
        self.leaves = _flat(self.structure, f"{prefix}/{name}" if prefix else name)
        self.put = _putter(self.structure, name)

    @property
    def row_bytes(self) -> int:
        return sum(leaf.row_bytes for _, leaf in self.leaves)

    def zero(self, i: int) -> None:
        for _, leaf in self.leaves:
            leaf.zero(i)

    def reset(self, rows: int) -> None:
        for _, leaf in self.leaves:
            leaf.reset(rows)

    def new_block(self, rows: int) -> None:
        for _, leaf in self.leaves:
            leaf.new_block(rows)

    def columns(self, rows_in_last: int) -> dict[str, list[np.ndarray]]:
        return {key: leaf.column(rows_in_last) for key, leaf in self.leaves}


class EpisodeBuffer:
    """Buffers one episode in SAR alignment: step t holds o_t, a_t, r_t, d_t, metadata_t.

    Rows live in blocks shared by all fields: the first holds 256 steps, each next one twice
    as many until a block reaches 8 MiB. ``put``s address rows relative to the current block.
    """

    def __init__(
        self,
        *,
        observation_spec: Any,
        action_spec: Any,
        reward_spec: Any,
        discount_spec: Any,
        step_metadata_spec: Mapping[str, Any] | None = None,
    ):
        self.observation = Field(rlds.OBSERVATION, observation_spec)
        self.action = Field(rlds.ACTION, action_spec)
        self.reward = Field(rlds.REWARD, reward_spec)
        self.discount = Field(rlds.DISCOUNT, discount_spec)
        self.metadata: list[Field] = []
        self.step_metadata_spec: dict[str, Any] | None = None
        self.num_transitions = 0  # T: the episode so far has T + 1 steps
        self.episode_index = 0
        self.active = False
        self._block_start = 0  # step index of row 0 of the current block
        self._block_rows = 0
        if step_metadata_spec is not None:
            self.set_step_metadata_spec(step_metadata_spec)
        self._put_action = self.action.put
        self._put_reward = self.reward.put
        self._put_discount = self.discount.put
        self._put_observation = self.observation.put
        self._flat_action = _flat_leaf(self.action)
        self._flat_observation = _flat_leaf(self.observation)
        reward_leaf = self.reward.structure
        discount_leaf = self.discount.structure
        self._scalar_reward_discount = (
            (reward_leaf, discount_leaf)
            if all(
                isinstance(leaf, _ScalarLeaf) and leaf._flat is not None
                for leaf in (reward_leaf, discount_leaf)
            )
            else None
        )

    @property
    def _fields(self) -> list[Field]:
        return [self.observation, self.action, self.reward, self.discount, *self.metadata]

    def set_step_metadata_spec(self, spec: Mapping[str, Any]) -> None:
        """Declares the step metadata fields (once, before the first step that has them)."""
        self.step_metadata_spec = dict(spec)
        self.metadata = [Field(key, value) for key, value in spec.items()]
        if self.num_transitions > 0:
            raise SpecError("step metadata must be declared at reset or on the first step")
        for field in self.metadata:
            field.reset(self._block_rows)

    def _context(self, error: SpecError) -> SpecError:
        return SpecError(f"episode {self.episode_index}, step {self.num_transitions}: {error}")

    def start(self, observation: Any) -> None:
        """Begins an episode with its first observation o_0."""
        self.num_transitions = 0
        self._block_start = 0
        self._block_rows = _FIRST_BLOCK_ROWS
        for field in self._fields:
            field.reset(_FIRST_BLOCK_ROWS)
        try:
            self._put_observation(0, observation)
        except SpecError as e:
            raise self._context(e) from None
        self.active = True

    def put_action(self, action: Any) -> None:
        """Validates and stores a_t (before the environment steps)."""
        i = self.num_transitions - self._block_start
        leaf = self._flat_action
        if leaf is not None:  # inlined _ArrayLeaf.put: one call less per step
            n = leaf._n
            try:
                leaf._flat[i * n : i * n + n] = action
                return
            except (TypeError, ValueError):
                pass
        try:
            self._put_action(i, action)
        except SpecError as e:
            raise self._context(e) from None

    def add_step(self, reward: Any, discount: Any, observation: Any, metadata: Any) -> None:
        """Stores r_t, d_t and metadata_t for the pending action a_t, and o_{t+1}."""
        t = self.num_transitions
        i = t - self._block_start
        try:
            scalars = self._scalar_reward_discount
            if scalars is not None:
                # Inlined _ScalarLeaf.put for the usual scalar reward and discount (saves two
                # calls per step); anything unusual takes the leaves' own checked path.
                reward_leaf, discount_leaf = scalars
                cls = reward.__class__
                if cls is reward_leaf._python_type or cls is reward_leaf._scalar_type:
                    reward_leaf._flat[i] = reward
                else:
                    reward_leaf.put(i, reward)
                cls = discount.__class__
                if cls is discount_leaf._python_type or cls is discount_leaf._scalar_type:
                    discount_leaf._flat[i] = discount
                else:
                    discount_leaf.put(i, discount)
            else:
                self._put_reward(i, reward)
                self._put_discount(i, discount)
            if self.metadata:
                self._put_metadata(i, metadata)
            elif metadata is not None and self.step_metadata_spec is not None:
                raise SpecError("step_fn returned a value, but its first result was empty")
            i += 1
            if i == self._block_rows:
                self._new_block()
                i = 0
            leaf = self._flat_observation
            if leaf is not None:  # inlined _ArrayLeaf.put: one call less per step
                n = leaf._n
                try:
                    leaf._flat[i * n : i * n + n] = observation
                except (TypeError, ValueError):
                    leaf.put(i, observation)  # converts or raises the SpecError
            else:
                self._put_observation(i, observation)
        except SpecError as e:
            raise self._context(e) from None
        self.num_transitions = t + 1

    def _put_metadata(self, i: int, metadata: Any) -> None:
        if not isinstance(metadata, Mapping):
            raise SpecError(f"step_fn returned {type(metadata).__name__}, not a dict")
        if len(metadata) != len(self.metadata):
            extra = sorted(set(map(str, metadata)) - {f.name for f in self.metadata})
            raise SpecError(f"step_fn returned keys {extra} that its first result lacked")
        for field in self.metadata:
            if field.name not in metadata:
                raise SpecError(f"step_fn's result has no key {field.name!r}")
            field.put(i, metadata[field.name])

    def _new_block(self) -> None:
        row_bytes = max(1, sum(field.row_bytes for field in self._fields))
        cap = max(64, _MAX_BLOCK_BYTES // row_bytes)
        self._block_start += self._block_rows
        self._block_rows = max(self._block_rows, min(2 * self._block_rows, cap))
        for field in self._fields:
            field.new_block(self._block_rows)

    def finish(self, terminal: bool) -> dict[str, list[np.ndarray]]:
        """Ends the episode: flattened step columns (lists of blocks) of its T + 1 steps."""
        length = self.num_transitions + 1
        last = length - 1 - self._block_start
        for field in (self.action, self.reward, self.discount, *self.metadata):
            field.zero(last)
        steps: dict[str, Any] = {}
        for field in self._fields:
            steps.update(field.columns(last + 1))
        flags = np.zeros((3, length), dtype=np.bool_)
        flags[0, 0] = True
        flags[1, -1] = True
        flags[2, -1] = terminal
        steps[f"{rlds.STEPS}/{rlds.IS_FIRST}"] = [flags[0]]
        steps[f"{rlds.STEPS}/{rlds.IS_LAST}"] = [flags[1]]
        steps[f"{rlds.STEPS}/{rlds.IS_TERMINAL}"] = [flags[2]]
        self.active = False
        self.episode_index += 1
        return steps

    def discard(self) -> None:
        """Drops the episode in progress."""
        self.active = False
        self.num_transitions = 0


def _flat_leaf(field: Field) -> _ArrayLeaf | None:
    """The field's leaf if it is a single 1-D (or scalar) array copied through a memoryview."""
    leaf = field.structure
    if type(leaf) is _ArrayLeaf and leaf._flat is not None and len(leaf.shape) == 1:
        return leaf
    return None


def conform(name: str, spec: Any, value: Any) -> dict[str, np.ndarray]:
    """Validates one episode-level value against ``spec``; returns its flattened leaves."""
    field = Field(name, spec, prefix="")
    field.reset(1)
    field.put(0, value)
    return {key: column[0][0] for key, column in field.columns(1).items()}
