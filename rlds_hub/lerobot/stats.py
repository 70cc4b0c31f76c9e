"""LeRobot's statistics of a feature: per episode (``meta/episodes``' ``stats/<key>/<stat>``
columns) and aggregated over the dataset (``meta/stats.json``), with LeRobot 0.4's keys and
definitions: ``min``, ``max``, ``mean``, ``std``, ``count`` and the quantiles ``q01``,
``q10``, ``q50``, ``q90``, ``q99``.

Definitions (LeRobot's): a vector feature's statistics are per dimension over the episode's
frames; a camera's are per channel over the pixels of a sample of the episode's frames
(evenly spaced, ``sample_positions``; frames of 300 pixels or more on a side are
subsampled), scaled to [0, 1], shaped ``(3, 1, 1)``, ``count`` the frames sampled. A
quantile ``q`` of an episode is the smallest value with at least ``q`` of the values at or
below it (the inverse of the empirical CDF, which LeRobot approximates with a 5000-bin
histogram); with fewer than two values every quantile is the mean. Dataset statistics
combine the episodes' weighted by ``count``: exact min, max, mean and std, and the
count-weighted mean of the episodes' quantiles. Camera ``std`` is the exact standard
deviation (LeRobot 0.4 squares uint8 pixels in uint8, which wraps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
_MIN_SAMPLES, _MAX_SAMPLES, _POWER = 100, 10_000, 0.75
_DOWNSAMPLE_FROM, _DOWNSAMPLE_TO = 300, 150

Stats = dict[str, np.ndarray]


def sample_positions(num_frames: int) -> np.ndarray:
    """The frames of an episode whose pixels a camera's statistics use (LeRobot's rule:
    ``num_frames ** 0.75`` evenly spaced frames, at least 100 (or all), at most 10,000)."""
    wanted = max(min(_MIN_SAMPLES, num_frames), min(int(num_frames**_POWER), _MAX_SAMPLES))
    return np.round(np.linspace(0, num_frames - 1, wanted)).astype(np.int64)


def downsample(frame: np.ndarray) -> np.ndarray:
    """A ``H x W x C`` frame subsampled for statistics when a side has 300 pixels or more."""
    height, width = frame.shape[:2]
    if max(height, width) < _DOWNSAMPLE_FROM:
        return frame
    step = int(max(height, width) / _DOWNSAMPLE_TO)
    return frame[::step, ::step]


def _quantiles_of_sorted(counts_cum: np.ndarray, values: np.ndarray, total: int) -> Stats:
    """Inverse-CDF quantiles from cumulative counts ``[..., V]`` over sorted ``values``."""
    out = {}
    for key, q in QUANTILES.items():
        position = np.argmax(counts_cum >= q * total, axis=-1)
        out[key] = values[position].astype(np.float64)
    return out


def vector_stats(values: np.ndarray) -> Stats:
    """Statistics of ``[frames, ...]`` values of a numeric feature (per dimension)."""
    array = np.asarray(values)
    frames = array.shape[0]
    flat = array.reshape(frames, -1)
    if flat.dtype == np.bool_:
        flat = flat.astype(np.float64)
    as_float = flat.astype(np.float64)
    with np.errstate(invalid="ignore"):  # NaN values give NaN statistics, as in LeRobot
        mean = as_float.mean(axis=0)
        std = as_float.std(axis=0)
    stats: Stats = {
        "min": flat.min(axis=0),
        "max": flat.max(axis=0),
        "mean": mean,
        "std": std,
        "count": np.array([frames], np.int64),
    }
    if frames < 2:
        stats.update({key: mean.copy() for key in QUANTILES})
        return stats
    ordered = np.sort(as_float, axis=0)
    for key, q in QUANTILES.items():
        position = max(int(np.ceil(q * frames)) - 1, 0)
        stats[key] = ordered[position]
    return stats


def camera_stats(frames: np.ndarray) -> Stats:
    """Statistics of sampled ``[k, H, W, 3]`` uint8 frames, per channel, in [0, 1]."""
    frames = np.asarray(frames, np.uint8)
    k, channels = frames.shape[0], frames.shape[-1]
    pixels = frames.reshape(-1, channels)
    histogram = np.stack([np.bincount(pixels[:, c], minlength=256) for c in range(channels)])
    total = pixels.shape[0]
    levels = np.arange(256, dtype=np.float64)
    mean = histogram @ levels / total
    variance = histogram @ (levels**2) / total - mean**2
    present = histogram > 0
    stats: Stats = {
        "min": np.argmax(present, axis=1).astype(np.float64),
        "max": (255 - np.argmax(present[:, ::-1], axis=1)).astype(np.float64),
        "mean": mean,
        "std": np.sqrt(np.maximum(variance, 0.0)),
    }
    stats.update(_quantiles_of_sorted(np.cumsum(histogram, axis=1), levels, total))
    out = {key: (value / 255.0).reshape(channels, 1, 1) for key, value in stats.items()}
    out["count"] = np.array([k], np.int64)
    return out


def aggregate(episodes: Sequence[Stats]) -> Stats:
    """One feature's dataset statistics from its episodes' (see the module docstring)."""
    with np.errstate(invalid="ignore", over="ignore"):  # NaN / inf values: NaN / inf stats
        return _aggregate(episodes)


def _aggregate(episodes: Sequence[Stats]) -> Stats:
    counts = np.array([int(s["count"][0]) for s in episodes], np.float64)
    total = counts.sum()
    means = np.stack([np.asarray(s["mean"], np.float64) for s in episodes])
    weights = counts.reshape(-1, *([1] * (means.ndim - 1)))
    mean = (means * weights).sum(axis=0) / total
    spread = np.stack([np.asarray(s["std"], np.float64) ** 2 for s in episodes])
    variance = ((spread + (means - mean) ** 2) * weights).sum(axis=0) / total
    out: Stats = {
        "min": np.min(np.stack([s["min"] for s in episodes]), axis=0),
        "max": np.max(np.stack([s["max"] for s in episodes]), axis=0),
        "mean": mean,
        "std": np.sqrt(variance),
        "count": np.array([int(total)], np.int64),
    }
    for key in QUANTILES:
        values = np.stack([np.asarray(s[key], np.float64) for s in episodes])
        out[key] = (values * weights).sum(axis=0) / total
    return out


def to_json(stats: Stats) -> dict[str, Any]:
    """Statistics as JSON lists (LeRobot's ``stats.json`` values)."""
    return {key: np.asarray(value).tolist() for key, value in stats.items()}


def from_json(stats: dict[str, Any]) -> Stats:
    """JSON lists back to arrays."""
    return {key: np.asarray(value) for key, value in stats.items()}
