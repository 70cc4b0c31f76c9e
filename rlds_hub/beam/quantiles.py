"""Mergeable, deterministic quantile summaries of array features (elementwise).

A :class:`QuantileSketch` keeps, for every element of a leaf, at most ``size`` weighted
sample points (values sorted per element, each standing for ``weight`` values). While a
sketch has seen at most ``size`` values it is exact; beyond that, compressing keeps the points
at evenly spaced cumulative weights, which moves any rank by at most ``total / size``. The
sketch adds those amounts up, so :attr:`rank_error` is a guaranteed bound on how far (as a
fraction of the count) a reported quantile's rank can be from the one asked for;
:func:`merge_all` merges pairwise (a tree) so the bound grows with the logarithm of the
number of parts, not linearly. The stats job merges in a fixed order, so the result does not
depend on the runner. Non-finite values are left out, as in
:class:`rlds_hub.inspection.stats.Moments`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_SIZE = 4096


class QuantileSketch:
    """Elementwise quantile summary of a leaf with per-step shape ``shape``."""

    def __init__(self, shape: Sequence[int], size: int = DEFAULT_SIZE):
        self.shape = tuple(shape)
        self.size = size
        width = int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1
        self.values = np.zeros((0, width), np.float64)
        self.weights = np.zeros((0, width), np.float64)
        self.error = 0.0  # bound on the rank error, in units of weight

    def update(self, values: np.ndarray) -> None:
        """Adds ``[n, *shape]`` values."""
        if len(values) == 0:
            return
        rows = np.asarray(values).reshape(len(values), -1).astype(np.float64)
        weights = np.isfinite(rows).astype(np.float64)
        rows = np.where(weights > 0, rows, np.nan)
        other = QuantileSketch(self.shape, self.size)
        order = np.argsort(rows, axis=0, kind="stable")
        other.values = np.take_along_axis(rows, order, axis=0)
        other.weights = np.take_along_axis(weights, order, axis=0)
        other._compress()
        self.merge(other)

    def merge(self, other: QuantileSketch) -> None:
        values = np.concatenate([self.values, other.values])
        weights = np.concatenate([self.weights, other.weights])
        order = np.argsort(values, axis=0, kind="stable")  # NaN (empty points) sort last
        self.values = np.take_along_axis(values, order, axis=0)
        self.weights = np.take_along_axis(weights, order, axis=0)
        self.error += other.error
        self._compress()

    def _compress(self) -> None:
        live = int((self.weights > 0).sum(axis=0).max()) if self.weights.size else 0
        if live <= self.size:
            self.values = self.values[:live]
            self.weights = self.weights[:live]
            return
        width = self.values.shape[1]
        values = np.full((self.size, width), np.nan)
        weights = np.zeros((self.size, width))
        self.error += float(self.weights.sum(axis=0).max()) / self.size
        for j in range(width):
            w = self.weights[:, j]
            total = w.sum()
            if total == 0:
                continue
            cumulative = np.cumsum(w)
            targets = (np.arange(self.size) + 0.5) * (total / self.size)
            picks = np.minimum(np.searchsorted(cumulative, targets, side="right"), len(w) - 1)
            values[:, j] = self.values[picks, j]
            weights[:, j] = total / self.size
        self.values, self.weights = values, weights

    @property
    def rank_error(self) -> float:
        """Bound on a quantile's rank error, as a fraction of the count (0: exact)."""
        totals = self.weights.sum(axis=0)
        totals = totals[totals > 0]
        return float(self.error / totals.min()) if totals.size and self.error else 0.0

    def quantiles(self, qs: Sequence[float]) -> list[np.ndarray]:
        """Per ``q`` in [0, 1]: the element-wise value at rank ``q`` (inverted CDF: the
        smallest value whose cumulative weight reaches ``q`` of the total), NaN where an
        element has no finite value."""
        width = self.values.shape[1]
        out = [np.full(width, np.nan) for _ in qs]
        for j in range(width):
            w = self.weights[:, j]
            total = w.sum()
            if total == 0:
                continue
            cumulative = np.cumsum(w)
            for k, q in enumerate(qs):
                target = q * total
                index = int(np.searchsorted(cumulative, target - 1e-9 * total, side="left"))
                out[k][j] = self.values[min(index, len(w) - 1), j]
        return [o.reshape(self.shape) for o in out]

    def to_json(self, qs: Sequence[float], names: Sequence[str]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, values in zip(names, self.quantiles(qs), strict=True):
            result[name] = _json(values)
        result["quantile_rank_error"] = self.rank_error
        return result


def merge_all(sketches: Sequence[QuantileSketch]) -> QuantileSketch | None:
    """Merges sketches pairwise, in order (a balanced tree: the error bound grows with the
    logarithm of their number)."""
    level = list(sketches)
    if not level:
        return None
    while len(level) > 1:
        merged = []
        for i in range(0, len(level) - 1, 2):
            level[i].merge(level[i + 1])
            merged.append(level[i])
        if len(level) % 2:
            merged.append(level[-1])
        level = merged
    return level[0]


def _json(values: np.ndarray) -> Any:
    out = values.astype(object)
    out[np.isnan(values)] = None
    return out.tolist() if values.shape else (None if np.isnan(values) else float(values))
