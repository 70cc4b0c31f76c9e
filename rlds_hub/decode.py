"""Vectorised decoding of serialized RLDS episodes into whole-episode tensors.

Plain TFDS decodes an episode's ``steps`` into a nested ``tf.data.Dataset`` and bytes-encoded
tensors one step at a time (``tf.map_fn``). Here a batch of serialized episodes is parsed in
one ``tf.io.parse_example`` call with ``RaggedFeature``s, and every step field comes back as
one tensor over all steps of the batch (plus the episodes' lengths): raw-bytes tensors are
decoded with one ``decode_raw`` per field, not per step. The plan is compiled from the
dataset's own ``FeaturesDict``, so it reads any TFDS RLDS dataset with fixed-shape features,
not only rlds_hub's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from rlds_hub import spec as rlds

# Key of the per-episode step counts in decoded batches.
NUM_STEPS = "__num_steps__"
# Types tf.io.decode_raw produces directly (little-endian, as TFDS writes them).
_DECODE_RAW_TYPES = (
    tf.float16, tf.bfloat16, tf.float32, tf.float64, tf.int8, tf.int16, tf.int32, tf.int64,
    tf.uint8, tf.uint16, tf.complex64, tf.complex128,
)


def string_tensor(records: Any) -> tf.Tensor:
    """A 1-D string tensor of serialized records (bytes or memoryviews)."""
    return tf.constant([bytes(r) if isinstance(r, memoryview) else r for r in records],
                       dtype=tf.string)


class DecodeError(ValueError):
    """An episode that does not match the dataset's features, or a feature we cannot decode."""


@dataclasses.dataclass(frozen=True)
class Leaf:
    """How one serialized feature key is parsed and decoded."""

    key: str  # flattened TFDS key, e.g. "steps/observation/position"
    kind: str  # "native", "raw", "string" or "image"
    dtype: tf.DType  # decoded dtype
    shape: tuple[int, ...]  # per-step (or per-episode) shape
    in_steps: bool
    serialized_dtype: tf.DType


def compile_leaves(features: tfds.features.FeaturesDict) -> list[Leaf]:
    """One :class:`Leaf` per serialized key of an episode ``FeaturesDict``."""
    return list(_compile(features, "", in_steps=False))


def _compile(feature: Any, prefix: str, in_steps: bool):
    if isinstance(feature, tfds.features.Dataset | tfds.features.Sequence):
        if in_steps:
            raise DecodeError(f"{prefix}: nested sequences inside steps are not supported")
        yield from _compile(feature.feature, prefix, in_steps=True)
        return
    if isinstance(feature, tfds.features.FeaturesDict):
        for key in sorted(feature.keys()):
            yield from _compile(feature[key], f"{prefix}/{key}" if prefix else key, in_steps)
        return
    if isinstance(feature, tfds.features.Image):
        shape = tuple(feature.shape)
        if any(d is None for d in shape):
            raise DecodeError(f"{prefix}: images of variable size are not supported")
        yield Leaf(prefix, "image", feature.tf_dtype, shape, in_steps, tf.string)
        return
    if isinstance(feature, tfds.features.Tensor):
        shape = tuple(feature.shape)
        if any(d is None for d in shape):
            raise DecodeError(f"{prefix}: tensors of dynamic shape {shape} are not supported")
        serialized = feature.get_serialized_info()
        dtype = feature.tf_dtype
        if dtype == tf.string:
            yield Leaf(prefix, "string", tf.string, shape, in_steps, tf.string)
        elif serialized.np_dtype == np.object_:
            yield Leaf(prefix, "raw", dtype, shape, in_steps, tf.string)
        else:
            wire = tf.float32 if dtype.is_floating else tf.int64
            yield Leaf(prefix, "native", dtype, shape, in_steps, wire)
        return
    raise DecodeError(
        f"{prefix}: feature type {type(feature).__name__} is not supported by the fast decoder"
    )


class EpisodeDecoder:
    """Parses batches of serialized episodes into flat whole-batch tensors.

    ``decode(serialized)`` maps a 1-D string tensor of B episodes to a dict: step keys to
    tensors ``[sum of steps, *shape]`` (episodes concatenated in order), episode keys to
    ``[B, *shape]``, and ``NUM_STEPS`` to the ``[B]`` step counts. It is graph-compatible,
    so it runs inside ``tf.data`` maps.
    """

    def __init__(self, features: tfds.features.FeaturesDict):
        leaves = compile_leaves(features)
        self.leaves = leaves
        self.step_leaves = [leaf for leaf in leaves if leaf.in_steps]
        if not self.step_leaves:
            raise DecodeError("the features have no step fields: not an RLDS episode dataset")
        self._spec = {
            leaf.key: tf.io.RaggedFeature(leaf.serialized_dtype, row_splits_dtype=tf.int64)
            for leaf in leaves
        }
        self._length_key = _length_key(self.step_leaves)

    def decode(self, serialized: tf.Tensor, *, with_lengths: bool = False) -> dict[str, tf.Tensor]:
        """Decodes a batch; ``with_lengths`` adds ``"<key>#steps"``: [B] steps per step key."""
        parsed = tf.io.parse_example(serialized, self._spec)
        out: dict[str, tf.Tensor] = {}
        length_leaf = next(leaf for leaf in self.step_leaves if leaf.key == self._length_key)
        values_per_step = _values_per_entry(length_leaf)
        num_steps = parsed[self._length_key].row_lengths() // values_per_step
        out[NUM_STEPS] = num_steps
        for leaf in self.leaves:
            ragged = parsed[leaf.key]
            if with_lengths:
                per_entry = _values_per_entry(leaf)
                lengths = ragged.row_lengths()
                out[f"{leaf.key}#steps"] = lengths // per_entry if per_entry else lengths
                out[f"{leaf.key}#values"] = lengths
            out[leaf.key] = _decode_values(leaf, ragged.flat_values)
        return out

    def expected_values(self, leaf: Leaf) -> int:
        """Serialized values per step (step leaves) or per episode (episode leaves)."""
        return _values_per_entry(leaf)


def _values_per_entry(leaf: Leaf) -> int:
    """Number of serialized list values per step for a leaf."""
    if leaf.kind in ("raw", "image"):
        return 1
    return int(np.prod(leaf.shape, dtype=np.int64)) if leaf.shape else 1


def _length_key(step_leaves: list[Leaf]) -> str:
    """A step key whose serialized values count steps exactly (prefer is_first)."""
    preferred = f"{rlds.STEPS}/{rlds.IS_FIRST}"
    keys = {leaf.key: leaf for leaf in step_leaves}
    if preferred in keys:
        return preferred
    for leaf in step_leaves:
        if _values_per_entry(leaf) > 0:
            return leaf.key
    raise DecodeError("cannot determine episode lengths: every step field is empty")


def _decode_values(leaf: Leaf, values: tf.Tensor) -> tf.Tensor:
    shape = [-1, *leaf.shape]
    if leaf.kind == "native":
        if leaf.dtype == tf.uint64:
            values = tf.bitcast(values, tf.uint64)
        elif values.dtype != leaf.dtype:
            values = tf.cast(values, leaf.dtype)
        return tf.reshape(values, shape)
    if leaf.kind == "string":
        return tf.reshape(values, shape)
    if leaf.kind == "raw":
        size = int(np.prod(leaf.shape, dtype=np.int64)) if leaf.shape else 1
        if leaf.dtype == tf.bool:
            raw = tf.io.decode_raw(values, tf.uint8, fixed_length=size)
            return tf.reshape(tf.not_equal(raw, 0), shape)
        if leaf.dtype in _DECODE_RAW_TYPES:
            return tf.reshape(tf.io.decode_raw(values, leaf.dtype), shape)
        itemsize = leaf.dtype.size  # uint32/uint64: decode bytes, then reinterpret
        raw = tf.io.decode_raw(values, tf.uint8, fixed_length=size * itemsize)
        if itemsize > 1:
            raw = tf.reshape(raw, [-1, size, itemsize])
        return tf.reshape(tf.bitcast(raw, leaf.dtype), shape)
    # image
    channels = leaf.shape[-1] if len(leaf.shape) == 3 else 0
    frames = tf.map_fn(
        lambda blob: tf.io.decode_image(blob, channels=channels, dtype=leaf.dtype,
                                        expand_animations=False),
        values,
        fn_output_signature=tf.TensorSpec(leaf.shape, leaf.dtype),
    )
    return tf.reshape(frames, shape)


def split_episodes(batch: Mapping[str, np.ndarray], leaves: list[Leaf]) -> list[dict[str, Any]]:
    """Splits a decoded numpy batch into per-episode nested dicts."""
    lengths = np.asarray(batch[NUM_STEPS])
    ends = np.cumsum(lengths)
    starts = ends - lengths
    episodes = []
    for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
        flat = {}
        for leaf in leaves:
            values = batch[leaf.key]
            flat[leaf.key] = values[start:end] if leaf.in_steps else values[i]
        episodes.append(unflatten(flat))
    return episodes


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a/b": x}`` -> ``{"a": {"b": x}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out
