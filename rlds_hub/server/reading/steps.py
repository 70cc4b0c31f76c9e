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
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlds_hub import spec as rlds
from rlds_hub.format.features import is_image_spec
from rlds_hub.format.plan import Leaf, Plan

STEPS_PREFIX = f"{rlds.STEPS}/"
FORMATS = ("json", "arrow", "npz")
MEDIA_TYPES = {
    "json": "application/json",
    "arrow": "application/vnd.apache.arrow.stream",
    "npz": "application/x-npz",
}


class SliceError(ValueError):
    """A slice request the client got wrong."""


def is_image(leaf: Leaf) -> bool:
    """Image frames: encoded images, or raw uint8 ``H x W x C`` arrays."""
    return leaf.kind == "image" or (leaf.kind == "raw" and is_image_spec(leaf.shape, leaf.dtype))


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


def slice_bytes(arrays: dict[str, np.ndarray], leaves: Sequence[Leaf], start: int,
                stop: int) -> int:
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
    dtypes = {leaf.name: "string" if leaf.kind == "string" else leaf.dtype.name
              for leaf in leaves}
    shapes = {leaf.name: list(leaf.shape) for leaf in leaves}
    return dtypes, shapes


def json_values(values: np.ndarray) -> Any:
    """Nested lists of JSON values (non-finite floats spelled out, bytes as text)."""
    if values.dtype == object:
        flat = [v.decode("utf-8", errors="backslashreplace") if isinstance(v, bytes) else str(v)
                for v in values.reshape(-1)]
        return np.array([*flat, None], dtype=object)[:-1].reshape(values.shape).tolist()
    if values.dtype.kind == "c":
        return json_values(np.stack([values.real, values.imag], axis=-1))
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        out = values.astype(object)
        for index in zip(*np.nonzero(~np.isfinite(values)), strict=True):
            value = float(values[index])
            out[index] = "NaN" if math.isnan(value) else ("Infinity" if value > 0
                                                          else "-Infinity")
        return out.tolist()
    return values.tolist()


def encode_json(arrays: dict[str, np.ndarray], leaves: Sequence[Leaf], header: dict[str, Any],
                start: int, stop: int) -> bytes:
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


def encode_arrow(arrays: dict[str, np.ndarray], leaves: Sequence[Leaf], header: dict[str, Any],
                 start: int, stop: int) -> bytes:
    import pyarrow as pa

    columns, names = [], []
    for leaf in leaves:
        columns.append(_arrow_column(pa, leaf, arrays[leaf.key][start:stop]))
        names.append(leaf.name)
    dtypes, shapes = describe(leaves)
    description = {**header, "start": start, "stop": stop, "dtypes": dtypes, "shapes": shapes}
    batch = pa.RecordBatch.from_arrays(columns, names=names)
    schema = batch.schema.with_metadata({"rlds_hub": json.dumps(description)})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(batch.replace_schema_metadata(schema.metadata))
    return sink.getvalue()


def _arrow_column(pa: Any, leaf: Leaf, values: np.ndarray) -> Any:
    if values.dtype == object:
        flat = list(values.reshape(-1))
        try:
            column = pa.array([bytes(v).decode("utf-8") for v in flat], pa.string())
        except UnicodeDecodeError:
            column = pa.array([bytes(v) for v in flat], pa.binary())
        size = int(np.prod(leaf.shape)) if leaf.shape else 1
        return column if not leaf.shape else pa.FixedSizeListArray.from_arrays(column, size)
    if values.dtype.kind == "c":
        raise SliceError(f"{leaf.name}: complex numbers have no Arrow type; use format=npz")
    if values.ndim == 1:
        return pa.array(values)
    return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(values))


def encode_npz(arrays: dict[str, np.ndarray], leaves: Sequence[Leaf], header: dict[str, Any],
               start: int, stop: int) -> bytes:
    out: dict[str, np.ndarray] = {}
    for leaf in leaves:
        values = arrays[leaf.key][start:stop]
        if values.dtype == object:
            values = np.array([bytes(v) for v in values.reshape(-1)] or [b""],
                              dtype=np.bytes_)[: values.size].reshape(values.shape)
        out[leaf.name] = values
    dtypes, shapes = describe(leaves)
    description = {**header, "start": start, "stop": stop, "dtypes": dtypes, "shapes": shapes}
    out["__rlds_hub__"] = np.array(json.dumps(description))
    buffer = io.BytesIO()
    np.savez(buffer, **out)
    return buffer.getvalue()


ENCODERS = {"json": encode_json, "arrow": encode_arrow, "npz": encode_npz}
