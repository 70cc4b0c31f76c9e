"""The encoder: whole RLDS episodes to serialized ``tf.train.Example`` bytes, without
TensorFlow.

The bytes are exactly what TFDS's own serializer produces for the dataset's features (same
keys, same list kinds, same encodings), so plain
``tfds.builder_from_directory(...).as_dataset()`` parses them; but they are assembled with
NumPy from whole-episode columns instead of per-value protobuf calls, and returned as a list
of buffer pieces (views of the recorded arrays where possible) that are written with one
``writev``: a large episode is not copied again to be serialized. The encoder works from
the dataset's leaf plan (:mod:`rlds_hub.format.plan`).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from rlds_hub.format.images import encode_png
from rlds_hub.format.plan import Leaf, LeafKind, Plan, PlanError

_TAG_1 = 0x0A  # field 1, length-delimited: Example.features, Features.feature, list.value
_TAG_2 = 0x12  # field 2: Feature.float_list; map entry value
_TAG_3 = 0x1A  # field 3: Feature.int64_list
_TAG1_BYTES = bytes([_TAG_1])
_TAG2_BYTES = bytes([_TAG_2])
_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)
# Rows at least this large are written as views (no copy); smaller rows are framed in one array.
_ZERO_COPY_ROW_BYTES = 4096

Piece = bytes | memoryview
Column = np.ndarray | Sequence[np.ndarray]  # a whole column, or its blocks in order


class Pieces:
    """A message under construction: a list of buffers and their total size."""

    __slots__ = ("parts", "size")

    def __init__(self, parts: list[Piece] | None = None, size: int | None = None):
        self.parts = parts or []
        self.size = sum(len(p) for p in self.parts) if size is None else size

    def add(self, piece: Piece) -> None:
        self.parts.append(piece)
        self.size += len(piece)

    def extend(self, other: Pieces) -> None:
        self.parts.extend(other.parts)
        self.size += other.size

    def field(self, tag: int) -> Pieces:
        """This message wrapped as a length-delimited field ``tag``."""
        header = bytes([tag]) + varint(self.size)
        return Pieces([header, *self.parts], self.size + len(header))

    def tobytes(self) -> bytes:
        return b"".join(self.parts)


def varint(value: int) -> bytes:
    """Protobuf varint of a non-negative int."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varints(values: np.ndarray) -> bytes:
    """Packed protobuf varints of an integer array (two's complement for negatives)."""
    u = np.ascontiguousarray(values).astype(np.int64, copy=False).view(np.uint64).ravel()
    if u.size == 0:
        return b""
    if int(u.max()) < 0x80:
        return u.astype(np.uint8).tobytes()
    lengths = 1 + (u[:, None] >= _VARINT_LIMITS[None, :]).sum(axis=1)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    for k in range(int(lengths.max())):
        has = lengths > k
        chunk = (u[has] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (lengths[has] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[has] + k] = (chunk | more).astype(np.uint8)
    return out.tobytes()


def _blocks(column: Column) -> list[np.ndarray]:
    return [column] if isinstance(column, np.ndarray) else list(column)


def _packed(tag: int, payload: Pieces) -> Pieces:
    """Feature{<tag>_list{value: <packed payload>}}."""
    inner = payload.field(_TAG_1) if payload.size else Pieces()
    return inner.field(tag)


def _float_list(column: Column) -> Pieces:
    payload = Pieces()
    for block in _blocks(column):
        if block.size:
            payload.add(memoryview(np.ascontiguousarray(block, dtype="<f4")).cast("B"))
    return _packed(_TAG_2, payload)


def _int64_list(column: Column) -> Pieces:
    blocks = [b.ravel() for b in _blocks(column)]
    if blocks[0].dtype == np.bool_:  # 0/1: each varint is the byte itself
        raw = b"".join(b.view(np.uint8).tobytes() for b in blocks)
    else:
        raw = varints(np.concatenate(blocks) if len(blocks) > 1 else blocks[0])
    return _packed(_TAG_3, Pieces([raw]) if raw else Pieces())


def _bytes_list(values: list[bytes]) -> Pieces:
    """Feature{bytes_list{value: ...}} for variable-length values."""
    body = b"".join(_TAG1_BYTES + varint(len(v)) + v for v in values)
    return Pieces([body]).field(_TAG_1)


def _fixed_bytes_list(rows: list[np.ndarray], width: int) -> Pieces:
    """Feature{bytes_list} whose values are equal-length rows (uint8 arrays of ``width``)."""
    prefix = _TAG1_BYTES + varint(width)
    body = Pieces()
    if width >= _ZERO_COPY_ROW_BYTES:
        for block in rows:
            for row in block:
                body.add(prefix)
                body.add(memoryview(row))
    else:
        prefix_array = np.frombuffer(prefix, dtype=np.uint8)
        for block in rows:
            framed = np.empty((len(block), len(prefix) + width), dtype=np.uint8)
            framed[:, : len(prefix)] = prefix_array
            framed[:, len(prefix) :] = block
            body.add(memoryview(framed).cast("B"))
    return body.field(_TAG_1)


class ExampleEncoder:
    """Encodes whole episodes of one plan into serialized ``tf.train.Example``.

    Args:
      features: the plan, or the ``features.json`` content it is compiled from.
      png_compress_level: zlib level of the PNG frames written for image leaves.
    """

    def __init__(self, features: Plan | Mapping[str, Any], *, png_compress_level: int = 1):
        plan = features if isinstance(features, Plan) else Plan.from_features_json(features)
        self.plan = plan
        self.leaves = list(plan.leaves)
        for leaf in self.leaves:
            if leaf.kind == LeafKind.IMAGE and leaf.image_format == "jpeg":
                raise PlanError(
                    f"{leaf.key}: rlds_hub writes images as lossless PNG; JPEG features can "
                    "be copied record by record but not re-encoded"
                )
        self._png_level = png_compress_level
        self._keys = {
            leaf.key: Pieces([leaf.key.encode()]).field(_TAG_1).tobytes() for leaf in self.leaves
        }
        self._pool: ThreadPoolExecutor | None = None
        self._encoders: dict[str, Callable[[Any, Leaf], Pieces]] = {
            "float": lambda v, leaf: _float_list(v),
            "int": lambda v, leaf: _int64_list(v),
            LeafKind.RAW: self._encode_raw,
            LeafKind.STRING: self._encode_strings,
            LeafKind.IMAGE: self._encode_png,
        }

    def encode_pieces(self, values: Mapping[str, Any]) -> Pieces:
        """Serializes one episode as buffer pieces.

        Args:
          values: flattened feature key (``steps/observation/position``) -> value. Step
            leaves are columns: an array with a leading axis over the episode's steps, or a
            list of such arrays (blocks, in order). Episode leaves are single values.
        """
        parts: list[Piece] = [b""]  # [0]: the Example's header, filled in last
        size = 0
        for leaf in self.leaves:
            value = values[leaf.key]
            if not leaf.in_steps:
                value = [np.asarray(value)[None]] if leaf.kind != LeafKind.STRING else [[value]]
            feature = self._encoders[_encoder_kind(leaf)](value, leaf)
            # map entry {key, value: feature} as one header followed by the feature's pieces
            key = self._keys[leaf.key]
            feature_header = _TAG2_BYTES + varint(feature.size)
            entry_size = len(key) + len(feature_header) + feature.size
            header = b"".join((_TAG1_BYTES, varint(entry_size), key, feature_header))
            parts.append(header)
            parts += feature.parts
            size += len(header) + feature.size
        parts[0] = _TAG1_BYTES + varint(size)
        return Pieces(parts, size + len(parts[0]))

    def encode(self, values: Mapping[str, Any]) -> bytes:
        """Serializes one episode to bytes."""
        return self.encode_pieces(values).tobytes()

    def _encode_raw(self, column: Column, leaf: Leaf) -> Pieces:
        width = leaf.dtype.itemsize * _size(leaf.shape)
        rows = []
        for block in _blocks(column):
            if not len(block):
                continue
            block = np.ascontiguousarray(block, dtype=leaf.dtype.newbyteorder("<"))
            rows.append(block.reshape(len(block), -1).view(np.uint8).reshape(len(block), width))
        if leaf.compression == "zlib":  # TFDS encoding="zlib": each step's bytes, compressed
            return _bytes_list([zlib.compress(row.tobytes()) for block in rows for row in block])
        return _fixed_bytes_list(rows, width)

    def _encode_strings(self, column: Any, leaf: Leaf) -> Pieces:
        values = []
        for block in column:
            values += [_utf8(v, leaf.key) for v in np.asarray(block, dtype=object).ravel()]
        return _bytes_list(values)

    def _encode_png(self, column: Column, leaf: Leaf) -> Pieces:
        frames = [frame for block in _blocks(column) for frame in np.asarray(block, np.uint8)]
        workers = os.cpu_count() or 1
        if len(frames) < 8 or workers == 1:
            return _bytes_list([encode_png(f, self._png_level) for f in frames])
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rlds-png")
        # A few large chunks per thread: per-task overhead would otherwise rival the ~130 us
        # a frame costs. zlib and PIL's filters release the GIL, so threads use every core.
        size = -(-len(frames) // (2 * workers))
        chunks = [frames[i : i + size] for i in range(0, len(frames), size)]
        encoded = self._pool.map(
            lambda chunk: [encode_png(f, self._png_level) for f in chunk], chunks
        )
        return _bytes_list([blob for chunk in encoded for blob in chunk])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _utf8(value: Any, key: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"{key}: expected str or bytes, got {type(value).__name__}")


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _encoder_kind(leaf: Leaf) -> str:
    return leaf.wire if leaf.kind == LeafKind.NATIVE else leaf.kind
