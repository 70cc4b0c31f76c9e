"""A slice of an episode's steps in three encodings: JSON (small slices, for browsers),
Arrow IPC and NPZ (bulk, for notebooks and learners).

Fields are step leaves named without the ``steps/`` prefix ("observation/position").
- JSON: ``{"fields": {name: nested lists}, "dtypes": ..., "shapes": ...}``; non-finite
  floats as "NaN" / "Infinity" / "-Infinity", strings as UTF-8 text. Image fields are not
  sent as JSON (use the frame endpoints, or a bulk format).
- Arrow: one record batch, one column per field: scalars as Arrow primitives, arrays as the
  canonical ``arrow.fixed_shape_tensor`` extension type (``column.to_numpy_ndarray()``),
  strings as ``string`` (``binary`` if not UTF-8); the slice's description in the schema
  metadata under ``rlds_hub``.
- NPZ: ``numpy.load`` without pickles: strings as fixed-width bytes; the description as
  the JSON string ``__rlds_hub__``.

Bulk encodings are produced as a stream of chunks of about ``CHUNK_BYTES`` (:func:`stream`):
Arrow as one record batch per chunk of steps, NPZ as a ZIP written front to back (data
descriptors, ZIP64), so a response never holds a second copy of the slice.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import numpy as np

from rlds_hub import rlds_types as rlds
from rlds_hub.format.features import is_image_spec
from rlds_hub.format.plan import Leaf, LeafKind, Plan

STEPS_PREFIX = f"{rlds.STEPS}/"
CHUNK_BYTES = 4 * 2**20  # about this many bytes of arrays per streamed chunk
STRING_BYTES = 64  # what one string element is counted as before it is read
MEDIA_TYPES = {
    "json": "application/json",
    "arrow": "application/vnd.apache.arrow.stream",
    "npz": "application/x-npz",
}


class SliceError(ValueError):
    """A slice request the client got wrong."""


def is_image(leaf: Leaf) -> bool:
    """Image frames: encoded images, or raw uint8 ``H x W x C`` arrays."""
    return leaf.kind == LeafKind.IMAGE or (
        leaf.kind == LeafKind.RAW and is_image_spec(leaf.shape, leaf.dtype)
    )


def step_leaves(plan: Plan, fields: Sequence[str] | None, *, allow_images: bool) -> list[Leaf]:
    """The step leaves named by ``fields`` (names or prefixes at "/"; None: every leaf,
    images only if ``allow_images``)."""
    leaves = list(plan.step_leaves)
    if fields is None:
        return [leaf for leaf in leaves if allow_images or not is_image(leaf)]
    chosen: list[Leaf] = []
    for field in fields:
        name = field.strip().strip("/").removeprefix(STEPS_PREFIX)
        matches = [leaf for leaf in leaves if leaf.name == name or leaf.name.startswith(name + "/")]
        if not name or not matches:
            raise SliceError(
                f"fields: {field!r} names no step field; the step fields are "
                f"{', '.join(leaf.name for leaf in leaves)}"
            )
        chosen += [leaf for leaf in matches if leaf not in chosen]
    if not allow_images:
        images = [leaf.name for leaf in chosen if is_image(leaf)]
        if images:
            raise SliceError(
                f"fields: {', '.join(images)} are image frames, which JSON does not carry: use "
                "format=arrow or format=npz, or the frames endpoint"
            )
    return [leaf for leaf in leaves if leaf in chosen]


def resolve_range(start: int | None, stop: int | None, length: int) -> tuple[int, int]:
    """``[start, stop)`` within an episode of ``length`` steps; negative values count from
    the end, as in Python. Raises ``SliceError`` for bounds outside the episode or reversed."""

    def place(value: int, what: str) -> int:
        if value < -length or value > length:
            raise SliceError(
                f"{what}={value} is outside the episode, which has {length} steps (use "
                f"{-length}..{length}; negative values count from the end)"
            )
        return value + length if value < 0 else value

    low = 0 if start is None else place(start, "start")
    high = length if stop is None else place(stop, "stop")
    if low > high:
        raise SliceError(f"start ({start}) is after stop ({stop}): the slice is reversed")
    return low, high


def slice_bytes(
    arrays: dict[str, np.ndarray], leaves: Sequence[Leaf], start: int, stop: int
) -> int:
    """Bytes the slice's arrays take (strings counted by their length)."""
    total = 0
    for leaf in leaves:
        values = arrays[leaf.key][start:stop]
        if values.dtype == object:
            total += sum(len(v) for v in values.reshape(-1))
        else:
            total += values.nbytes
    return total


def describe(leaves: Sequence[Leaf]) -> tuple[dict[str, str], dict[str, list[int]]]:
    dtypes = {
        leaf.name: "string" if leaf.kind == LeafKind.STRING else leaf.dtype.name for leaf in leaves
    }
    shapes = {leaf.name: list(leaf.shape) for leaf in leaves}
    return dtypes, shapes


def json_values(values: np.ndarray) -> Any:
    """Nested lists of JSON values (non-finite floats spelled out, bytes as text)."""
    if values.dtype == object:
        flat = [
            v.decode("utf-8", errors="backslashreplace") if isinstance(v, bytes) else str(v)
            for v in values.reshape(-1)
        ]
        return np.array([*flat, None], dtype=object)[:-1].reshape(values.shape).tolist()
    if values.dtype.kind == "c":
        return json_values(np.stack([values.real, values.imag], axis=-1))
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        out = values.astype(object)
        for index in zip(*np.nonzero(~np.isfinite(values)), strict=True):
            value = float(values[index])
            out[index] = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return out.tolist()
    return values.tolist()


def encode_json(
    arrays: dict[str, np.ndarray],
    leaves: Sequence[Leaf],
    header: dict[str, Any],
    start: int,
    stop: int,
) -> bytes:
    dtypes, shapes = describe(leaves)
    body = {
        **header,
        "start": start,
        "stop": stop,
        "dtypes": dtypes,
        "shapes": shapes,
        "fields": {leaf.name: json_values(arrays[leaf.key][start:stop]) for leaf in leaves},
    }
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def step_bytes(leaves: Sequence[Leaf]) -> int:
    """Bytes one step of ``leaves`` takes decoded (strings counted as ``STRING_BYTES``)."""
    return sum(
        leaf.size * (STRING_BYTES if leaf.kind == LeafKind.STRING else leaf.dtype.itemsize)
        for leaf in leaves
    )


def _chunks(
    leaves: Sequence[Leaf], start: int, stop: int, chunk_bytes: int
) -> list[tuple[int, int]]:
    """``[low, high)`` step ranges of about ``chunk_bytes`` covering ``[start, stop)`` (one
    empty range for an empty slice)."""
    rows = max(1, chunk_bytes // max(1, step_bytes(leaves)))
    return [(low, min(low + rows, stop)) for low in range(start, stop, rows)] or [(start, stop)]


class _Sink:
    """A write-only file whose bytes are taken out as they come (no ``seek``/``tell``:
    writers then stream)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        return len(chunk)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _description(
    leaves: Sequence[Leaf], header: dict[str, Any], start: int, stop: int
) -> dict[str, Any]:
    dtypes, shapes = describe(leaves)
    return {**header, "start": start, "stop": stop, "dtypes": dtypes, "shapes": shapes}


def stream_json(
    arrays: dict[str, np.ndarray],
    leaves: Sequence[Leaf],
    header: dict[str, Any],
    start: int,
    stop: int,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[bytes]:
    """The JSON document in one piece (JSON slices are small: ``max_json_steps``)."""
    yield encode_json(arrays, leaves, header, start, stop)


def stream_arrow(
    arrays: dict[str, np.ndarray],
    leaves: Sequence[Leaf],
    header: dict[str, Any],
    start: int,
    stop: int,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[bytes]:
    """An Arrow IPC stream: the schema (with the description), then one record batch per
    chunk of steps."""
    import pyarrow as pa

    for leaf in leaves:
        if leaf.kind != LeafKind.STRING and arrays[leaf.key].dtype.kind == "c":
            raise SliceError(f"{leaf.name}: complex numbers have no Arrow type; use format=npz")
    text = {
        leaf.key: _is_text(arrays[leaf.key][start:stop])
        for leaf in leaves
        if arrays[leaf.key].dtype == object
    }
    metadata = {"rlds_hub": json.dumps(_description(leaves, header, start, stop))}
    sink = _Sink()
    writer = None
    for low, high in _chunks(leaves, start, stop, chunk_bytes):
        columns = [
            _arrow_column(pa, leaf, arrays[leaf.key][low:high], text.get(leaf.key))
            for leaf in leaves
        ]
        batch = pa.RecordBatch.from_arrays(columns, names=[leaf.name for leaf in leaves])
        batch = batch.replace_schema_metadata(metadata)
        if writer is None:
            writer = pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), batch.schema)
        writer.write_batch(batch)
        yield sink.take()
    assert writer is not None
    writer.close()
    yield sink.take()


def _is_text(values: np.ndarray) -> bool:
    try:
        for value in values.reshape(-1):
            bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _arrow_column(pa: Any, leaf: Leaf, values: np.ndarray, text: bool | None) -> Any:
    if values.dtype == object:
        flat = [bytes(v) for v in values.reshape(-1)]
        column = (
            pa.array([v.decode("utf-8") for v in flat], pa.string())
            if text
            else pa.array(flat, pa.binary())
        )
        size = int(np.prod(leaf.shape)) if leaf.shape else 1
        return column if not leaf.shape else pa.FixedSizeListArray.from_arrays(column, size)
    if values.ndim == 1:
        return pa.array(values)
    return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(values))


def stream_npz(
    arrays: dict[str, np.ndarray],
    leaves: Sequence[Leaf],
    header: dict[str, Any],
    start: int,
    stop: int,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[bytes]:
    """An NPZ archive (what ``numpy.savez`` writes, read by ``numpy.load``), written entry
    by entry and each array chunk by chunk."""
    sink = _Sink()
    with zipfile.ZipFile(
        sink, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True
    ) as archive:
        for leaf in leaves:
            values = arrays[leaf.key][start:stop]
            if values.dtype == object:
                values = np.array([bytes(v) for v in values.reshape(-1)] or [b""], dtype=np.bytes_)[
                    : values.size
                ].reshape(values.shape)
            values = np.ascontiguousarray(values)
            with archive.open(f"{leaf.name}.npy", "w", force_zip64=True) as entry:
                _write_npy_header(entry, values)
                for low, high in _chunks([leaf], 0, len(values), chunk_bytes):
                    entry.write(values[low:high].data)
                    yield sink.take()
        description = np.array(json.dumps(_description(leaves, header, start, stop)))
        with archive.open("__rlds_hub__.npy", "w", force_zip64=True) as entry:
            np.lib.format.write_array(entry, description, allow_pickle=False)
    yield sink.take()


def _write_npy_header(file: Any, values: np.ndarray) -> None:
    fields = np.lib.format.header_data_from_array_1_0(values)
    try:
        np.lib.format.write_array_header_1_0(file, fields)
    except ValueError:  # a header too long for format 1.0
        np.lib.format.write_array_header_2_0(file, fields)


STREAMS = {"json": stream_json, "arrow": stream_arrow, "npz": stream_npz}


def stream(
    format: str,
    arrays: dict[str, np.ndarray],
    leaves: Sequence[Leaf],
    header: dict[str, Any],
    start: int,
    stop: int,
    chunk_bytes: int = CHUNK_BYTES,
) -> Generator[bytes, None, None]:
    """The slice ``[start, stop)`` in ``format`` as chunks of bytes (close the generator
    when stopping early)."""
    return STREAMS[format](arrays, leaves, header, start, stop, chunk_bytes)


def encode(
    format: str,
    arrays: dict[str, np.ndarray],
    leaves: Sequence[Leaf],
    header: dict[str, Any],
    start: int,
    stop: int,
) -> bytes:
    """The slice in ``format`` as one bytes object (small slices, tests)."""
    return b"".join(stream(format, arrays, leaves, header, start, stop))
