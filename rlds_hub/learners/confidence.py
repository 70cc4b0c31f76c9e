"""Means with bootstrap confidence intervals, for the learners' reported numbers.

A reported point is the mean over training seeds of each seed's mean over its test episodes;
its 95% interval comes from a two-level (hierarchical) bootstrap: resample the seeds, then
each chosen seed's episodes, so both sources of variation — which seed was trained and which
episodes were played — are in the interval. With one episode per seed it is the ordinary
bootstrap over seeds. SDs, where shown, are sample SDs (``ddof=1``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

MIN_TEST_EPISODES = 30  # per reported point (all seeds together)


@dataclasses.dataclass(frozen=True)
class Interval:
    """A mean, its bootstrap interval and the per-seed means behind it."""

    mean: float
    low: float
    high: float
    per_seed: tuple[float, ...]
    episodes: int
    level: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        """Whether the whole interval lies above or below 0."""
        return self.low > 0 or self.high < 0

    def format(self, digits: int = 2) -> str:
        """``0.53 [0.41, 0.66] (per seed 0.50, 0.56; 30 episodes)``."""
        f = f"{{:.{digits}f}}"
        seeds = ", ".join(f.format(v) for v in self.per_seed)
        return (
            f"{f.format(self.mean)} [{f.format(self.low)}, {f.format(self.high)}] "
            f"(per seed {seeds}; {self.episodes} episodes)"
        )


def bootstrap_interval(
    per_seed: Sequence[Sequence[float]],
    *,
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """The mean of per-seed means of ``per_seed`` (one list of episode values per training
    seed) with its percentile bootstrap interval at ``level``.

    Raises:
      ValueError: no seeds, a seed without values, or a level outside (0, 1).
    """
    groups = [np.asarray(values, np.float64) for values in per_seed]
    if not groups or any(g.size == 0 for g in groups):
        raise ValueError("bootstrap_interval needs at least one value for every seed")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    means = np.array([g.mean() for g in groups])
    chosen = rng.integers(0, len(groups), (resamples, len(groups)))  # seeds, resampled
    draws = np.empty(chosen.shape)
    for index, group in enumerate(groups):  # each chosen seed's episodes, resampled anew
        picked = chosen == index
        rows = rng.integers(0, group.size, (int(picked.sum()), group.size))
        draws[picked] = group[rows].mean(axis=1)
    estimates = draws.mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(estimates, [tail, 1.0 - tail])
    return Interval(
        float(means.mean()),
        float(low),
        float(high),
        tuple(float(m) for m in means),
        int(sum(g.size for g in groups)),
        level,
    )


def paired_differences(
    a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]
) -> list[list[float]]:
    """Episode-by-episode ``a - b`` for two methods played on the same test episodes (same
    seeds, same environment seed per seed): the input of an interval on a difference."""
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b, strict=True)):
        raise ValueError("paired differences need the same seeds and episodes on both sides")
    return [
        [float(x) - float(y) for x, y in zip(xs, ys, strict=True)]
        for xs, ys in zip(a, b, strict=True)
    ]


def sample_sd(values: Sequence[float]) -> float:
    """The sample standard deviation (``ddof=1``; 0 for a single value)."""
    array = np.asarray(values, np.float64)
    return float(array.std(ddof=1)) if array.size > 1 else 0.0
