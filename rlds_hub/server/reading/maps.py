"""Depth maps (and any single-channel picture stored as numbers) as frames: a numeric step
field shaped ``H x W`` or ``H x W x 1``, at least ``MIN_SIDE`` on each side, that is not an
image already, is coloured with viridis over the finite range of the whole episode (so that
steps compare); values that are not finite are black."""

from __future__ import annotations

import numpy as np

from rlds_hub.format.plan import Leaf, LeafKind

MIN_SIDE = 8
# viridis at ten even stops, interpolated to 256 entries
_STOPS = np.array(
    [
        [68, 1, 84],
        [72, 40, 120],
        [62, 74, 137],
        [49, 104, 142],
        [38, 130, 142],
        [31, 158, 137],
        [53, 183, 121],
        [109, 205, 89],
        [180, 222, 44],
        [253, 231, 37],
    ],
    dtype=np.float64,
)
_LUT = (
    np.stack(
        [
            np.interp(np.linspace(0, len(_STOPS) - 1, 256), np.arange(len(_STOPS)), _STOPS[:, c])
            for c in range(3)
        ],
        axis=-1,
    )
    .round()
    .astype(np.uint8)
)


def is_map(leaf: Leaf) -> bool:
    """A numeric step field shaped like a single-channel picture (not an encoded image)."""
    shape = leaf.shape
    return (
        leaf.in_steps
        and leaf.kind in (LeafKind.NATIVE, LeafKind.RAW)
        and leaf.dtype.kind in "iuf"
        and (len(shape) == 2 or (len(shape) == 3 and shape[2] == 1))
        and min(shape[:2]) >= MIN_SIDE
    )


def colour(frames: np.ndarray, over: np.ndarray | None = None) -> np.ndarray:
    """``[T, H, W(, 1)]`` values as ``[T, H, W, 3]`` uint8 viridis, scaled to the finite
    range of ``over`` (default: ``frames``)."""
    values = frames.reshape(frames.shape[0], frames.shape[1], frames.shape[2])
    finite_over = _finite(frames if over is None else over)
    low, high = (
        (float(finite_over.min()), float(finite_over.max())) if finite_over.size else (0.0, 0.0)
    )
    as_float = values.astype(np.float64)
    finite = np.isfinite(as_float)
    scale = 255.0 / (high - low) if high > low else 0.0
    with np.errstate(invalid="ignore"):
        index = np.where(finite, (as_float - low) * scale + (0 if scale else 127.5), 0)
    out = _LUT[np.clip(index, 0, 255).round().astype(np.uint8)]
    out[~finite] = 0
    return out


def _finite(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind != "f":
        return values.reshape(-1)
    return values[np.isfinite(values)]
