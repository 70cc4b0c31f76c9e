"""The one decoder: serialized RLDS episodes (``tf.train.Example``) to NumPy, mostly without
copies, and without TensorFlow.

Every reader of rlds_hub (loaders, statistics, validation, the episode table, pipelines,
the service, the learners) decodes episodes here rather than with TensorFlow's parser: it walks the
protobuf wire format of each record in Python (a few dozen fields per *episode*, so the cost
per step is nanoseconds) and turns every list into a NumPy view of the record's bytes —
packed floats directly, fixed-size byte strings (TFDS's ``encoding="bytes"``) through a
structured view that skips each entry's two-byte header. It is faster than
``tf.io.parse_example`` (measured side by side: docs/benchmarks.md, "Before and after the
format core"), and unlike TensorFlow it runs where only NumPy is installed.

It reads any TFDS RLDS dataset with fixed-shape features, packed or not; variable-size
values (strings, PNG and JPEG frames, zlib-encoded tensors) take slower per-value paths.
Images decode exactly as TFDS decodes them (:mod:`rlds_hub.format.images`).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence

import numpy as np

from rlds_hub.format.images import decode_frames
from rlds_hub.format.plan import Leaf, LeafKind, Plan

# Key of the per-episode step counts in decoded batches.
NUM_STEPS = "__num_steps__"
_BYTES_LIST, _FLOAT_LIST, _INT64_LIST = 1, 2, 3


class ParseError(ValueError):
    """A record that is not a well-formed ``tf.train.Example`` of the expected features."""


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
                elif tag == 0x12:  # the Feature: one list field (unrolled: hot path)
                    value_end = pos + length
                    inner_pos = pos
                    while inner_pos < value_end:
                        inner_tag = buf[inner_pos]
                        inner_pos += 1
                        if inner_tag >= 0x80:
                            inner_tag, inner_pos = _varint(buf, inner_pos - 1)
                        if inner_tag & 7 != 2:
                            inner_pos = _skip(buf, inner_pos, inner_tag & 7)
                            continue
                        size, inner_pos = _varint(buf, inner_pos)
                        if inner_pos + size > value_end:
                            raise ParseError(
                                "a feature's list runs past its end (truncated record)"
                            )
                        kind, inner = inner_tag >> 3, buf[inner_pos : inner_pos + size]
                        inner_pos += size
                    if inner_pos != value_end:
                        raise ParseError("a feature runs past its end (truncated record)")
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
    header = _entry_header(width)
    stride = len(header) + width
    if len(message) % stride:
        return None
    count = len(message) // stride
    if count == 0:
        return np.empty((0, width), np.uint8)
    rows = np.frombuffer(message, np.uint8).reshape(count, stride)
    # every entry's header (tag, then its length), checked in one pass
    if len(header) == 2 and stride % 2 == 0:
        heads = np.frombuffer(message, "<u2")[:: stride // 2]
        if not (heads == header.view("<u2")[0]).all():
            return None
    elif rows[:, : len(header)].tobytes() != header.tobytes() * count:
        return None
    return rows[:, len(header) :]


@functools.lru_cache(maxsize=256)
def _entry_header(width: int) -> np.ndarray:
    return np.frombuffer(bytes([0x0A]) + _varint_bytes(width), np.uint8)


def bool_values(message: memoryview) -> np.ndarray:
    """The values of an Int64List of 0/1 values as bools (a view for one packed run)."""
    if len(message) and message[0] == 0x0A:
        length, pos = _varint(message, 1)
        if pos + length == len(message):
            payload = np.frombuffer(message[pos:], np.uint8)
            if not payload.size or int(payload.max()) <= 1:
                return payload.view(np.bool_)
    return int64_values(message) != 0


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


class EpisodeDecoder:
    """Decodes serialized episodes of one :class:`~rlds_hub.format.plan.Plan` into NumPy.

    :meth:`decode` maps a batch of records to flat arrays: step keys to ``[sum of steps,
    *shape]`` (episodes concatenated in order), episode keys to ``[B, *shape]``, and
    ``NUM_STEPS`` to the ``[B]`` step counts. Arrays are views of the records where
    possible: keep the records alive while using them. Only the plan's leaves are parsed
    (restrict the plan to decode fewer fields).
    """

    def __init__(self, plan: Plan | Sequence[Leaf]):
        self.plan = plan if isinstance(plan, Plan) else Plan(plan)
        self.leaves = self.plan.leaves
        if not self.plan.step_leaves:
            raise ParseError("no step fields to decode: not an RLDS episode dataset")

    def decode(self, records: Sequence[bytes | memoryview]) -> dict[str, np.ndarray]:
        """Decodes a batch of serialized episodes (see the class docstring).

        Raises:
          ParseError: naming the episode of the batch and the field that is wrong.
        """
        columns: dict[str, list[np.ndarray]] = {leaf.key: [] for leaf in self.leaves}
        lengths = []
        for index, record in enumerate(records):
            try:
                values, steps = self._decode_record(record)
            except ParseError as e:
                raise ParseError(f"episode {index} of the batch: {e}") from None
            for key, value in values.items():
                columns[key].append(value)
            lengths.append(steps)
        out = {
            key: _concat(parts, leaf)
            for (key, parts), leaf in zip(columns.items(), self.leaves, strict=True)
        }
        out[NUM_STEPS] = np.asarray(lengths, np.int64)
        return out

    def decode_episode(self, record: bytes | memoryview) -> tuple[dict[str, np.ndarray], int]:
        """One episode: flat arrays (step keys ``[T, *shape]``, episode keys ``shape``) and
        its number of steps ``T``.

        Raises:
          ParseError: naming the field that is wrong.
        """
        values, steps = self._decode_record(record)
        for leaf in self.plan.episode_leaves:
            values[leaf.key] = values[leaf.key][0]
        return values, steps

    def _decode_record(self, record: bytes | memoryview) -> tuple[dict[str, np.ndarray], int]:
        try:
            features = parse_features(memoryview(record))
        except (IndexError, ValueError) as e:
            raise ParseError(f"not a well-formed tf.train.Example ({e})") from None
        steps: int | None = None
        steps_key = ""
        values: dict[str, np.ndarray] = {}
        for leaf in self.leaves:
            try:
                value = leaf_values(leaf, features.get(leaf.key))
            except (IndexError, ValueError) as e:
                raise ParseError(f"{leaf.key}: {e}") from None
            count = len(value)
            if leaf.in_steps:
                if steps is None:
                    steps, steps_key = count, leaf.key
                elif count != steps:
                    raise ParseError(
                        f"{leaf.key} has {count} steps where {steps_key} has {steps} "
                        "(fields of different lengths)"
                    )
            elif count != 1:
                raise ParseError(
                    f"{leaf.key} holds {count} values, expected one per episode"
                    if leaf.key in features
                    else f"{leaf.key} is missing from the episode"
                )
            values[leaf.key] = value
        return values, steps or 0


def leaf_values(leaf: Leaf, found: tuple[int, memoryview] | None) -> np.ndarray:
    """One record's values of ``leaf`` (``(list kind, list message)`` from
    :func:`parse_features`, or None if absent), shaped ``[count, *shape]``.

    Raises:
      ParseError: a list of the wrong kind or size.
    """
    kind, message = found if found is not None else (None, memoryview(b""))
    if leaf.kind == LeafKind.NATIVE:
        if kind not in (None, _FLOAT_LIST, _INT64_LIST):
            raise ParseError("is not a numeric list")
        if leaf.dtype.kind == "f":
            values = float_values(message) if kind != _INT64_LIST else int64_values(message)
        elif leaf.dtype.kind == "b":
            values = bool_values(message)
        else:
            values = int64_values(message)
            if leaf.dtype == np.uint64:
                values = values.view(np.uint64)
        if values.dtype != leaf.dtype:
            values = values.astype(leaf.dtype)
        if leaf.size == 0:
            return np.empty((0, *leaf.shape), leaf.dtype)
        if values.size % leaf.size:
            raise ParseError(
                f"holds {values.size} values, not a whole number of {leaf.size}-value steps"
            )
        return values.reshape(-1, *leaf.shape)
    if kind not in (None, _BYTES_LIST):
        raise ParseError("is not a bytes list")
    if leaf.kind == LeafKind.RAW:
        width = leaf.dtype.itemsize * leaf.size
        rows = None if leaf.compression else fixed_bytes_values(message, width)
        if rows is None:
            entries = bytes_values(message)
            if leaf.compression:
                entries = [_inflate(entry, width) for entry in entries]
            bad = next((e for e in entries if len(e) != width), None)
            if bad is not None:
                raise ParseError(f"an entry holds {len(bad)} bytes, expected {width}")
            rows = np.frombuffer(b"".join(entries), np.uint8).reshape(len(entries), width)
        if leaf.dtype == np.bool_:
            values = rows != 0
        else:
            values = rows.view(_little_endian(leaf.dtype)) if width else rows
        return values.reshape(len(rows), *leaf.shape)
    if leaf.kind == LeafKind.STRING:
        entries = bytes_values(message)
        if leaf.size == 0:
            return np.empty((0, *leaf.shape), object)
        if len(entries) % leaf.size:
            raise ParseError(
                f"holds {len(entries)} strings, not a whole number of {leaf.size}-string steps"
            )
        out = np.empty(len(entries), object)
        out[:] = entries
        return out.reshape(-1, *leaf.shape)
    # in parallel, in place; an error names the step: one frame of an episode is bad
    return decode_frames(bytes_values(message), leaf)


def _inflate(entry: bytes, width: int) -> bytes:
    """A zlib entry (TFDS ``encoding="zlib"``) inflated to at most ``width`` + 1 bytes, so a
    corrupt or hostile entry cannot inflate without bound.

    Raises:
      ParseError: not zlib data, or more than ``width`` bytes.
    """
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(entry, width + 1)
    except zlib.error as e:
        raise ParseError(f"an entry is not valid zlib data ({e})") from None
    if len(data) > width or inflater.unconsumed_tail:
        raise ParseError(f"an entry inflates to more than {width} bytes, expected {width}")
    return data


@functools.lru_cache(maxsize=64)
def _little_endian(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("<")


def _concat(parts: list[np.ndarray], leaf: Leaf) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return np.empty((0, *leaf.shape), leaf.dtype)
    return np.concatenate(parts)


def value_counts(plan: Plan, record: bytes | memoryview) -> dict[str, int]:
    """How many serialized values each leaf of ``plan`` holds in one record (numbers for
    native leaves, entries for the others), without decoding them — for validation.

    Raises:
      ParseError: the record is not a well-formed ``tf.train.Example``.
    """
    try:
        features = parse_features(memoryview(record))
    except (IndexError, ValueError) as e:
        raise ParseError(f"not a well-formed tf.train.Example ({e})") from None
    counts = {}
    for leaf in plan.leaves:
        found = features.get(leaf.key)
        if found is None:
            counts[leaf.key] = 0
            continue
        kind, message = found
        if kind == _FLOAT_LIST:
            counts[leaf.key] = len(float_values(message))
        elif kind == _INT64_LIST:
            counts[leaf.key] = len(int64_values(message))
        else:
            counts[leaf.key] = sum(1 for number, _, _ in _fields(message) if number == 1)
    return counts
