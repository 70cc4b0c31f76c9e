"""Decoding serialized RLDS episodes (``tf.train.Example``) with NumPy, mostly without copies.

rlds_hub's loaders read episodes through this parser rather than TensorFlow's: it walks the
protobuf wire format of each record in Python (a few dozen fields per *episode*, so the cost
per step is nanoseconds) and turns every list into a NumPy view of the record's bytes —
packed floats directly, fixed-size byte strings (TFDS's ``encoding="bytes"``) through a
structured view that skips each entry's two-byte header. Measured on the read benchmark's
episodes it decodes ~25M steps/s on one core, against ~11M/s for ``tf.io.parse_example``, and
unlike TensorFlow it runs where only NumPy is installed.

It reads any TFDS RLDS dataset, packed or not; variable-size values (strings, PNG frames)
take slower per-value paths.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

# Key of the per-episode step counts in decoded batches (as in rlds_hub.decode).
NUM_STEPS = "__num_steps__"
_BYTES_LIST, _FLOAT_LIST, _INT64_LIST = 1, 2, 3


class ParseError(ValueError):
    """A record that is not a well-formed ``tf.train.Example`` of the expected features."""


@dataclasses.dataclass(frozen=True)
class Field:
    """How to decode one serialized key (the NumPy twin of :class:`rlds_hub.decode.Leaf`)."""

    key: str
    kind: str  # "native", "raw", "string" or "image"
    dtype: np.dtype
    shape: tuple[int, ...]
    in_steps: bool

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


def fields_from_leaves(leaves: Sequence[Any]) -> list[Field]:
    """Fields from :func:`rlds_hub.decode.compile_leaves`'s leaves (TensorFlow dtypes)."""
    out = []
    for leaf in leaves:
        dtype = np.dtype(object) if leaf.kind == "string" else np.dtype(leaf.dtype.as_numpy_dtype)
        out.append(Field(leaf.key, leaf.kind, dtype, tuple(leaf.shape), leaf.in_steps))
    return out


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    result = 0
    shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _skip(buf: memoryview, pos: int, wire_type: int) -> int:
    if wire_type == 0:
        return _varint(buf, pos)[1]
    if wire_type == 1:
        return pos + 8
    if wire_type == 2:
        length, pos = _varint(buf, pos)
        return pos + length
    if wire_type == 5:
        return pos + 4
    raise ParseError(f"unsupported protobuf wire type {wire_type}")


def _fields(buf: memoryview):
    """Yields ``(field number, wire type, value)`` of one message; value is a memoryview
    for length-delimited fields and the start offset otherwise."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ParseError("a field runs past the end of its message (truncated record)")
            yield number, wire_type, buf[pos : pos + length]
            pos += length
        else:
            yield number, wire_type, pos
            pos = _skip(buf, pos, wire_type)
    if pos != end:
        raise ParseError("a field runs past the end of its message (truncated record)")


def parse_features(record: memoryview) -> dict[str, tuple[int, memoryview]]:
    """The features of one serialized Example: key -> (list kind, list message).

    A hand-unrolled walk of Example > Features > map entries > Feature (the generic
    :func:`_fields` is used for the rare unusual layouts), since this runs per episode.
    """
    buf = record
    end = len(buf)
    features: dict[str, tuple[int, memoryview]] = {}
    pos = 0
    while pos < end:
        tag, pos = _varint(buf, pos)
        if tag != 0x0A:  # not Example.features
            pos = _skip(buf, pos, tag & 7)
            continue
        length, pos = _varint(buf, pos)
        features_end = pos + length
        while pos < features_end:
            tag = buf[pos]  # field tags here are one byte
            pos += 1
            if tag >= 0x80:
                tag, pos = _varint(buf, pos - 1)
            length, pos = _varint(buf, pos) if tag & 7 == 2 else (0, _skip(buf, pos, tag & 7))
            entry_end = pos + length
            if tag != 0x0A:  # not a map entry
                pos = entry_end
                continue
            key = None
            kind, inner = _BYTES_LIST, memoryview(b"")
            while pos < entry_end:
                tag = buf[pos]
                pos += 1
                if tag >= 0x80:
                    tag, pos = _varint(buf, pos - 1)
                if tag & 7 != 2:
                    pos = _skip(buf, pos, tag & 7)
                    continue
                length, pos = _varint(buf, pos)
                if tag == 0x0A:
                    key = bytes(buf[pos : pos + length]).decode()
                elif tag == 0x12:
                    for kind_number, _, content in _fields(buf[pos : pos + length]):
                        kind, inner = kind_number, content
                pos += length
            if pos != entry_end or entry_end > features_end:
                raise ParseError("a feature map entry runs past its end (truncated record)")
            if key is None:
                raise ParseError("a feature map entry has no key")
            features[key] = (kind, inner)
        if pos != features_end or features_end > end:
            raise ParseError("the features run past the end of the record (truncated record)")
    return features


def float_values(message: memoryview) -> np.ndarray:
    """The values of a FloatList message (packed or not), little-endian float32."""
    if not len(message):
        return np.empty(0, np.float32)
    if message[0] == 0x0A:
        length, pos = _varint(message, 1)
        if pos + length == len(message):  # one packed run: a view of the bytes
            return np.frombuffer(message[pos:], "<f4")
    parts = []
    for number, wire_type, value in _fields(message):
        if number != 1:
            continue
        if wire_type == 2:
            parts.append(np.frombuffer(value, "<f4"))
        elif wire_type == 5:
            parts.append(np.frombuffer(message[value : value + 4], "<f4"))
    return np.concatenate(parts) if parts else np.empty(0, np.float32)


def varint_values(data: np.ndarray) -> np.ndarray:
    """Decodes packed protobuf varints (uint8 array) to int64 (two's complement)."""
    if data.size == 0:
        return np.empty(0, np.int64)
    if int(data.max()) < 0x80:
        return data.astype(np.int64)
    ends = np.flatnonzero(data < 0x80)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    values = np.zeros(len(ends), np.uint64)
    for k in range(int(lengths.max())):
        has = lengths > k
        chunk = (data[starts[has] + k] & 0x7F).astype(np.uint64)
        values[has] |= chunk << np.uint64(7 * k)
    return values.view(np.int64)


def int64_values(message: memoryview) -> np.ndarray:
    """The values of an Int64List message (packed or not)."""
    parts = []
    for number, wire_type, value in _fields(message):
        if number != 1:
            continue
        if wire_type == 2:
            parts.append(varint_values(np.frombuffer(value, np.uint8)))
        elif wire_type == 0:
            parts.append(np.array([_varint(message, value)[0]], np.uint64).view(np.int64))
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def fixed_bytes_values(message: memoryview, width: int) -> np.ndarray | None:
    """The entries of a BytesList whose entries are all ``width`` bytes, as a [n, width]
    uint8 view — or None if they are not."""
    header = bytes([0x0A]) + _varint_bytes(width)
    stride = len(header) + width
    if len(message) % stride:
        return None
    count = len(message) // stride
    if count == 0:
        return np.empty((0, width), np.uint8)
    rows = np.frombuffer(message, np.uint8).reshape(count, stride)
    for column, expected in enumerate(header):  # every entry's header: tag, then its length
        if not (rows[:, column] == expected).all():
            return None
    return rows[:, len(header) :]


def bytes_values(message: memoryview) -> list[bytes]:
    """The entries of a BytesList message, one by one."""
    return [bytes(value) for number, _, value in _fields(message) if number == 1]


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class NumpyEpisodeDecoder:
    """Decodes batches of serialized episodes into flat NumPy arrays.

    ``decode(records)`` returns, like :meth:`rlds_hub.decode.EpisodeDecoder.decode`, step
    keys to arrays ``[sum of steps, *shape]`` (episodes concatenated in order), episode keys
    to ``[B, *shape]``, and ``NUM_STEPS`` to the ``[B]`` step counts. Arrays are views of
    the records where possible: keep the records alive while using them.
    """

    def __init__(self, fields: Sequence[Field]):
        self.fields = list(fields)
        if not any(f.in_steps for f in self.fields):
            raise ParseError("no step fields to decode: not an RLDS episode dataset")

    def decode(self, records: Sequence[bytes | memoryview]) -> dict[str, np.ndarray]:
        columns: dict[str, list[np.ndarray]] = {f.key: [] for f in self.fields}
        lengths = []
        for index, record in enumerate(records):
            try:
                features = parse_features(memoryview(record))
                steps = None
                for field in self.fields:
                    values = self._values(field, features.get(field.key))
                    count = len(values)
                    if field.in_steps:
                        steps = count if steps is None else steps
                        if count != steps:
                            raise ParseError(
                                f"{field.key} has {count} steps where other fields have {steps}"
                            )
                    elif count != 1:
                        raise ParseError(f"{field.key} holds {count} values, expected one")
                    columns[field.key].append(values)
            except (ParseError, IndexError, ValueError) as e:
                raise ParseError(f"episode {index} of the batch: {e}") from None
            lengths.append(steps)
        out = {key: _concat(parts) for key, parts in columns.items()}
        out[NUM_STEPS] = np.asarray(lengths, np.int64)
        return out

    def _values(self, field: Field, found: tuple[int, memoryview] | None) -> np.ndarray:
        """One record's values of ``field``, shaped ``[count, *shape]``."""
        kind, message = found if found is not None else (None, memoryview(b""))
        shape = (-1, *field.shape)
        if field.kind == "native":
            if kind not in (None, _FLOAT_LIST, _INT64_LIST):
                raise ParseError(f"{field.key} is not a numeric list")
            if field.dtype.kind == "f":
                values = float_values(message) if kind != _INT64_LIST else int64_values(message)
            else:
                values = int64_values(message)
                if field.dtype == np.uint64:
                    values = values.view(np.uint64)
            if values.dtype != field.dtype:
                values = values.astype(field.dtype)
            if field.size == 0:
                return np.empty((0, *field.shape), field.dtype)
            return values.reshape(shape)
        if kind not in (None, _BYTES_LIST):
            raise ParseError(f"{field.key} is not a bytes list")
        if field.kind == "raw":
            width = field.dtype.itemsize * field.size
            rows = fixed_bytes_values(message, width)
            if rows is None:
                entries = bytes_values(message)
                if any(len(e) != width for e in entries):
                    raise ParseError(f"{field.key}: an entry is not {width} bytes")
                rows = np.frombuffer(b"".join(entries), np.uint8).reshape(len(entries), width)
            values = rows.view(field.dtype.newbyteorder("<")) if width else rows
            if field.dtype == np.bool_:
                values = rows != 0
            return values.reshape(len(rows), *field.shape)
        if field.kind == "string":
            entries = bytes_values(message)
            out = np.empty(len(entries), object)
            out[:] = entries
            return out.reshape(shape)
        frames = [_decode_image(e, field) for e in bytes_values(message)]
        if not frames:
            return np.empty((0, *field.shape), field.dtype)
        return np.stack(frames)


def _decode_image(blob: bytes, field: Field) -> np.ndarray:
    from PIL import Image

    frame = np.asarray(Image.open(io.BytesIO(blob)), dtype=field.dtype)
    if frame.ndim == 2:
        frame = frame[..., None]
    return frame.reshape(field.shape)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)
