"""Fast serialisation of whole RLDS episodes to ``tf.train.Example`` bytes.

The bytes are exactly what TFDS's own serializer produces for the dataset's
``FeaturesDict`` (same keys, same list kinds, same encodings), so plain
``tfds.builder_from_directory(...).as_dataset()`` parses them; but they are assembled with
NumPy from whole-episode arrays instead of per-value protobuf calls. The plan (one encoder
per leaf feature) is compiled once from the features.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

_TAG_BYTES_LIST = 0x0A  # Feature.bytes_list (field 1); also Example.features, list.value
_TAG_FLOAT_LIST = 0x12  # Feature.float_list (field 2); also map entry value (field 2)
_TAG_INT64_LIST = 0x1A  # Feature.int64_list (field 3)
_LEN1 = bytes([_TAG_BYTES_LIST])
_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


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


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + varint(len(payload)) + payload


def _bytes_list(values: list[bytes]) -> bytes:
    """Feature{bytes_list{value: ...}} for variable-length values."""
    body = b"".join(_LEN1 + varint(len(v)) + v for v in values)
    return _field(_TAG_BYTES_LIST, body)


def _fixed_bytes_list(rows: np.ndarray) -> bytes:
    """Feature{bytes_list} whose values are the rows of a 2-D uint8 array (equal lengths)."""
    count, width = rows.shape
    prefix = np.frombuffer(_LEN1 + varint(width), dtype=np.uint8)
    framed = np.empty((count, prefix.size + width), dtype=np.uint8)
    framed[:, : prefix.size] = prefix
    framed[:, prefix.size :] = rows
    return _field(_TAG_BYTES_LIST, framed.tobytes())


def _float_list(values: np.ndarray) -> bytes:
    raw = np.ascontiguousarray(values, dtype="<f4").tobytes()
    return _field(_TAG_FLOAT_LIST, _field(_TAG_BYTES_LIST, raw) if raw else b"")


def _int64_list(values: np.ndarray) -> bytes:
    raw = varints(values)
    return _field(_TAG_INT64_LIST, _field(_TAG_BYTES_LIST, raw) if raw else b"")


def encode_png(frame: np.ndarray, compress_level: int) -> bytes:
    """Lossless PNG of one ``H x W x C`` uint8 frame (C in 1, 3, 4)."""
    from PIL import Image

    if frame.shape[-1] == 1:
        frame = frame[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(
        buffer, format="PNG", compress_level=compress_level
    )
    return buffer.getvalue()


@dataclasses.dataclass(frozen=True)
class LeafEncoder:
    """How one flattened feature key is encoded."""

    key: str
    kind: str  # "float", "int", "raw", "string" or "png"
    dtype: np.dtype | None
    shape: tuple[int, ...]
    in_steps: bool


class ExampleEncoder:
    """Encodes whole episodes for one ``FeaturesDict`` into serialized ``tf.train.Example``."""

    def __init__(self, features: tfds.features.FeaturesDict, *, png_compress_level: int = 1):
        self.leaves: list[LeafEncoder] = list(_compile(features, prefix="", in_steps=False))
        self._png_level = png_compress_level
        self._keys = {leaf.key: _field(_TAG_BYTES_LIST, leaf.key.encode()) for leaf in self.leaves}
        self._pool: ThreadPoolExecutor | None = None
        self._encoders: dict[str, Callable[[Any, LeafEncoder], bytes]] = {
            "float": lambda v, leaf: _float_list(v),
            "int": lambda v, leaf: _int64_list(v),
            "raw": self._encode_raw,
            "string": self._encode_strings,
            "png": self._encode_png,
        }

    def encode(self, values: Mapping[str, Any]) -> bytes:
        """Serializes one episode.

        Args:
          values: flattened feature key (``steps/observation/position``) -> value. Step leaves
            are arrays with a leading axis over the episode's steps; episode leaves are single
            values.
        """
        entries = []
        for leaf in self.leaves:
            feature = self._encoders[leaf.kind](values[leaf.key], leaf)
            entries.append(_field(_TAG_BYTES_LIST, self._keys[leaf.key] + _field(0x12, feature)))
        return _field(_TAG_BYTES_LIST, b"".join(entries))

    def _encode_raw(self, value: Any, leaf: LeafEncoder) -> bytes:
        array = np.ascontiguousarray(value, dtype=leaf.dtype.newbyteorder("<"))
        count = len(array) if leaf.in_steps else 1
        return _fixed_bytes_list(array.reshape(count, _size(leaf.shape)).view(np.uint8))

    def _encode_strings(self, value: Any, leaf: LeafEncoder) -> bytes:
        flat = np.asarray(value, dtype=object).ravel()
        return _bytes_list([_utf8(v, leaf.key) for v in flat])

    def _encode_png(self, value: Any, leaf: LeafEncoder) -> bytes:
        frames = np.asarray(value, dtype=np.uint8)
        if not leaf.in_steps:
            frames = frames[None]
        if len(frames) >= 8:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rlds-png")
            blobs = list(self._pool.map(lambda f: encode_png(f, self._png_level), frames))
        else:
            blobs = [encode_png(f, self._png_level) for f in frames]
        return _bytes_list(blobs)

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


def _compile(feature: Any, prefix: str, in_steps: bool):
    """Yields a LeafEncoder per serialized key, in TFDS's flattening order."""
    if isinstance(feature, tfds.features.Dataset):
        yield from _compile(feature.feature, prefix, in_steps=True)
        return
    if isinstance(feature, tfds.features.FeaturesDict):
        for key in sorted(feature.keys()):
            yield from _compile(feature[key], f"{prefix}/{key}" if prefix else key, in_steps)
        return
    if isinstance(feature, tfds.features.Image):
        shape = tuple(feature.shape)
        yield LeafEncoder(prefix, "png", np.dtype(np.uint8), shape, in_steps)
        return
    if isinstance(feature, tfds.features.Tensor):
        shape = tuple(feature.shape)
        dtype = np.dtype(feature.np_dtype)
        if dtype.kind in "OSU":
            kind = "string"
        elif feature.get_serialized_info().np_dtype == np.object_:
            kind = "raw"
        elif dtype.kind == "f":
            kind = "float"
        else:
            kind = "int"
        yield LeafEncoder(prefix, kind, dtype, shape, in_steps)
        return
    raise TypeError(
        f"feature {prefix!r} of type {type(feature).__name__} is not supported by the fast "
        "encoder (supported: FeaturesDict, Dataset, Tensor, Image)"
    )
