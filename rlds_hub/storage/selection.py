"""Which episodes to read: a :class:`Selection` of one split, episode index specs, and TFDS
split syntax (``"train[:80%]"``, ``"train[5:20]+test"``) resolved to episode indices.

Split slices follow TFDS exactly (units ``abs``, ``%`` with "closest" rounding and
``shard``; negative boundaries count from the end), so ``train[:80%]`` selects the same
episodes here as in ``tfds.load``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from rlds_hub.storage.dataset_files import DatasetError

if TYPE_CHECKING:
    from rlds_hub.storage.dataset import RLDSDataset

EpisodeSpec = slice | range | Sequence[int] | np.ndarray | int | None

_SPLIT_RE = re.compile(r"^(?P<name>[\w-]+)(\[(?P<selector>[\d\w%:._-]+)\])?$")
_BOUND_RE = re.compile(r"^((?P<value>-?[\d_.]+)(?P<unit>%|shard)?)?$")
_PLUS_RE = re.compile(r"\s*\+\s*")


def episode_indices(episodes: EpisodeSpec, num_episodes: int) -> np.ndarray | None:
    """Sorted, distinct episode indices for an int / range / slice / sequence; None for all.

    Negative indices count from the end, as in Python (``-1`` is the last episode).

    Raises:
      DatasetError: an index outside ``[-num_episodes, num_episodes)``.
      TypeError: indices that are not integers.
    """
    if episodes is None:
        return None
    if isinstance(episodes, slice):
        return np.arange(num_episodes, dtype=np.int64)[episodes]
    if isinstance(episodes, bool | np.bool_):
        raise TypeError(f"episode indices must be integers, got {episodes!r}")
    if isinstance(episodes, int | np.integer):
        episodes = [int(episodes)]
    if isinstance(episodes, str | bytes) or not hasattr(episodes, "__iter__"):
        raise TypeError(
            f"episodes must be an int, a range, a slice or a sequence of ints, got "
            f"{type(episodes).__name__}"
        )
    values = np.asarray(list(episodes) if not isinstance(episodes, np.ndarray) else episodes)
    if values.size and values.dtype.kind not in "iu":
        raise TypeError(f"episode indices must be integers, got {values.dtype} values")
    values = values.astype(np.int64).ravel()
    bad = values[(values < -num_episodes) | (values >= num_episodes)]
    if bad.size:
        raise DatasetError(
            f"episode indices {bad[:5].tolist()} are out of range (the split has "
            f"{num_episodes} episodes: use 0..{num_episodes - 1}, or -1 for the last)"
        )
    return np.unique(np.where(values < 0, values + num_episodes, values))


def parse_split(spec: str) -> list[tuple[str, tuple[float | int | None, float | int | None, str]]]:
    """TFDS split syntax to ``[(split, (from, to, unit)), ...]``.

    Raises:
      DatasetError: the text is not TFDS split syntax.
    """
    parts = []
    for part in _PLUS_RE.split(spec.strip()):
        match = _SPLIT_RE.match(part)
        if not match:
            raise DatasetError(_bad_split(spec))
        selector = match.group("selector")
        if selector is None:
            parts.append((match.group("name"), (None, None, "abs")))
            continue
        bounds = [_BOUND_RE.match(x) for x in selector.split(":")]
        if not all(bounds) or not any(b.group(0) for b in bounds) or len(bounds) > 2:
            raise DatasetError(_bad_split(spec))
        if len(bounds) == 1:
            if bounds[0]["unit"] != "shard":
                raise DatasetError(f"{spec!r}: a single index needs slice syntax ([x:y])")
            low = int(bounds[0]["value"])
            parts.append((match.group("name"), (low, low + 1, "shard")))
            continue
        unit = bounds[0]["unit"] or bounds[1]["unit"] or "abs"
        values = []
        for bound in bounds:
            value = bound["value"]
            values.append(None if value is None else float(value) if unit == "%" else int(value))
        parts.append((match.group("name"), (values[0], values[1], unit)))
    return parts


def _bad_split(spec: str) -> str:
    return (
        f"unrecognised split {spec!r}: use a split name, a slice such as 'train[:80%]', "
        "'train[10:20]' or 'train[2shard:4shard]', or several joined with '+'"
    )


def slice_indices(
    bounds: tuple[float | int | None, float | int | None, str],
    num_episodes: int,
    shard_lengths: Sequence[int],
) -> range:
    """The episodes a TFDS slice selects (TFDS's "closest" rounding for percentages)."""
    low, high, unit = bounds
    if unit == "%":
        low = 0 if low is None else round(low * num_episodes / 100.0)
        high = num_episodes if high is None else round(high * num_episodes / 100.0)
    elif unit == "shard":
        low = 0 if low is None else sum(shard_lengths[:low])
        if high is not None and high <= 0:
            high = len(shard_lengths) + high
        high = num_episodes if high is None else sum(shard_lengths[:high])
    else:
        low = 0 if low is None else low
        high = num_episodes if high is None else high
    if abs(low) > num_episodes or abs(high) > num_episodes:
        raise DatasetError(
            f"the slice [{low}:{high}] does not fit a split of {num_episodes} episodes"
        )
    low = low + num_episodes if low < 0 else low
    high = high + num_episodes if high < 0 else high
    return range(low, max(low, high))


@dataclasses.dataclass(frozen=True)
class ShardRead:
    """Read ``take`` episodes of one shard file, after skipping ``skip``; ``first`` is the
    split index of the first episode read."""

    path: str
    skip: int
    take: int
    shard_episodes: int
    first: int


@dataclasses.dataclass(frozen=True)
class Selection:
    """Some episodes (``indices``, ascending; None: all) of one split of a dataset."""

    dataset: RLDSDataset
    split: str
    indices: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        self.dataset.split(self.split)  # a clear error for an unknown split

    @property
    def num_episodes(self) -> int:
        if self.indices is None:
            return self.dataset.split(self.split).num_episodes
        return len(self.indices)

    def runs(self) -> list[tuple[int, int]]:
        """The selection as sorted, merged ``[start, stop)`` ranges of episode indices."""
        total = self.dataset.split(self.split).num_episodes
        if self.indices is None:
            return [(0, total)] if total else []
        runs: list[tuple[int, int]] = []
        for index in self.indices:
            if runs and runs[-1][1] == index:
                runs[-1] = (runs[-1][0], index + 1)
            else:
                runs.append((index, index + 1))
        return runs

    def shard_reads(self) -> list[ShardRead]:
        """Which part of which shard file to read, shard by shard, in split order."""
        info = self.dataset.split(self.split)
        reads = []
        start = 0
        runs = self.runs()
        for path, length in zip(info.shard_paths, info.shard_lengths, strict=True):
            end = start + length
            for lo, hi in runs:
                lo, hi = max(lo, start), min(hi, end)
                if lo < hi:
                    reads.append(ShardRead(path, lo - start, hi - lo, length, lo))
            start = end
        return reads
