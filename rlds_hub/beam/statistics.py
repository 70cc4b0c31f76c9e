"""``ComputeStatistics``: per-feature statistics with quantiles of dataset selections, for
the stats job and users' own pipelines.

Workers compute one partial result per work unit (a shard or a record range: the mergeable
moments of :func:`rlds_hub.inspection.stats.statistics`, a
:class:`~rlds_hub.beam.quantiles.QuantileSketch` per feature, episode lengths and returns);
the partials are merged in work-unit order, so every runner gives the same numbers. Each
result has exactly the shape of :func:`rlds_hub.inspection.stats.statistics` plus, per
feature, ``p5`` ... ``p95`` and ``quantile_rank_error``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np

from rlds_hub.beam import execution
from rlds_hub.beam.quantiles import DEFAULT_SIZE, QuantileSketch, merge_all
from rlds_hub.beam.reading import RecordUnit, record_units
from rlds_hub.inspection.stats import QUANTILES, feature_moments, summarize, update_moments
from rlds_hub.storage.dataset import open_dataset
from rlds_hub.storage.episodes import batch_returns, table_plan
from rlds_hub.storage.reader import iter_batches
from rlds_hub.storage.selection import Selection


class _UnitStatistics(beam.DoFn):
    """One work unit's partial statistics: moments, quantile sketches, lengths, returns."""

    def __init__(self, keys: list[str] | None, sketch_size: int, progress_dir: str | None):
        self._keys = keys
        self._size = sketch_size
        self._progress_dir = progress_dir

    def setup(self) -> None:
        self._datasets: dict[str, Any] = {}
        self._counter = execution.Counter(self._progress_dir) if self._progress_dir else None

    def teardown(self) -> None:
        if self._counter is not None:
            self._counter.close()

    def process(self, unit: RecordUnit) -> Iterator[tuple[tuple, str, dict[str, Any]]]:
        dataset = self._datasets.get(unit.path)
        if dataset is None:
            dataset = self._datasets[unit.path] = open_dataset(unit.path)
        plan = table_plan(dataset)
        moments, _ = feature_moments(dataset, self._keys)
        sketches = {key: QuantileSketch(m.leaf.shape, self._size) for key, m in moments.items()}
        lengths, returns = [], []
        selection = Selection(dataset, unit.split, unit.indices)
        for batch in iter_batches(selection, keys=plan.step_keys | set(moments)):
            update_moments(moments, batch)
            not_last = ~batch.last_step
            for key, sketch in sketches.items():
                values = batch.arrays[key]
                sketch.update(values if moments[key].all_steps else values[not_last])
            lengths.append(batch.num_steps)
            totals = batch_returns(plan, batch)
            if totals is not None:
                returns.append(totals)
            if self._counter is not None:
                self._counter.add(len(batch.num_steps))
        yield (
            unit.key,
            unit.split,
            {
                "moments": moments,
                "sketches": sketches,
                "lengths": np.concatenate(lengths) if lengths else np.zeros(0, np.int64),
                "returns": (np.concatenate(returns) if returns else np.zeros(0))
                if plan.reward_key is not None
                else None,
            },
        )


def merge_partials(
    dataset: Any,
    partials: Iterable[tuple[tuple, str, dict[str, Any]]],
    splits: Sequence[str],
    keys: list[str] | None,
) -> list[dict[str, Any]]:
    """The statistics JSON of each split from the units' partial results (in key order)."""
    plan = table_plan(dataset)
    results = []
    by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in splits}
    for _, split, partial in sorted(partials, key=lambda p: p[0]):
        by_split[split].append(partial)
    names = [f"p{q}" for q in QUANTILES]
    for split in splits:
        moments, skipped = feature_moments(dataset, keys)
        parts: dict[str, list[QuantileSketch]] = {}
        lengths, returns = [], []
        for partial in by_split[split]:
            for key, m in partial["moments"].items():
                moments[key].merge(m)
            for key, sketch in partial["sketches"].items():
                parts.setdefault(key, []).append(sketch)
            lengths.append(partial["lengths"])
            if partial["returns"] is not None:
                returns.append(partial["returns"])
        result = summarize(
            split,
            plan.layout,
            np.concatenate(lengths) if lengths else np.zeros(0, np.int64),
            (np.concatenate(returns) if returns else np.zeros(0))
            if plan.reward_key is not None
            else None,
            moments,
            skipped,
        )
        for key, m in moments.items():
            sketch = merge_all(parts.get(key, [])) or QuantileSketch(m.leaf.shape)
            result["features"][m.leaf.name].update(
                sketch.to_json([q / 100 for q in QUANTILES], names)
            )
        results.append(result)
    return results


def _merge(
    partials: list[Any], path: str, splits: Sequence[str], keys: list[str] | None
) -> list[dict[str, Any]]:
    return merge_partials(open_dataset(path), partials, splits, keys)


class ComputeStatistics(beam.PTransform):
    """The statistics of each split of ``selections`` (one dataset's; one selection per
    split): a PCollection of one result per split, each naming its ``split``.

    Args:
      selections: :class:`~rlds_hub.storage.selection.Selection` s of one dataset, each of
        another split (e.g. :func:`rlds_hub.storage.query.select_splits`).
      keys: only these features (flattened names); None: every feature.
      sketch_size: points per element of the quantile sketches (exact up to this many values).
      progress_dir: where workers count the episodes they read (a progress bar's counters).
    """

    def __init__(
        self,
        selections: Sequence[Selection],
        *,
        keys: Sequence[str] | None = None,
        sketch_size: int = DEFAULT_SIZE,
        progress_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        if not selections:
            raise ValueError("ComputeStatistics needs at least one selection")
        paths = {s.dataset.path for s in selections}
        if len(paths) != 1:
            raise ValueError(f"the selections must be of one dataset, got {sorted(paths)}")
        self.splits = [s.split for s in selections]
        if len(set(self.splits)) != len(self.splits):
            raise ValueError(f"{self.splits}: a split is named twice; statistics are per split")
        self.keys = list(keys) if keys else None
        self._path = paths.pop()
        feature_moments(selections[0].dataset, self.keys)  # a bad key fails here
        self.units = record_units(selections, 0)
        self._size = sketch_size
        self._progress_dir = os.fspath(progress_dir) if progress_dir is not None else None

    @property
    def num_episodes(self) -> int:
        return sum(len(u.indices) for u in self.units)

    def expand(self, pbegin: Any) -> Any:
        return (
            pbegin
            | "Units" >> beam.Create(self.units)
            | "SpreadUnits" >> beam.Reshuffle()
            | "UnitStatistics"
            >> beam.ParDo(_UnitStatistics(self.keys, self._size, self._progress_dir))
            | "Collect" >> beam.combiners.ToList()
            | "Merge" >> beam.FlatMap(_merge, self._path, self.splits, self.keys)
        )
