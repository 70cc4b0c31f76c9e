"""``ComputeStatistics``: per-feature statistics with quantiles of a dataset's episodes, for
the stats job and users' own pipelines.

Workers compute partial results (the mergeable moments of
:func:`rlds_hub.inspection.stats.statistics`, a :class:`~rlds_hub.beam.quantiles.QuantileSketch`
per feature, episode lengths and returns) per work unit (a shard or a record range) or per
group of episodes; the partials are merged in key order, so every runner gives the same
numbers. Each result has exactly the shape of :func:`rlds_hub.inspection.stats.statistics`
plus, per feature, ``p5`` ... ``p95`` and ``quantile_rank_error``.
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
from rlds_hub.beam.sink import EncodedEpisode
from rlds_hub.format.decode import NUM_STEPS
from rlds_hub.inspection.stats import QUANTILES, feature_moments, summarize, update_moments
from rlds_hub.storage.dataset import RLDSDataset, open_dataset
from rlds_hub.storage.episodes import batch_returns, table_plan
from rlds_hub.storage.reader import (
    DecodedBatch,
    EpisodeRecord,
    decode_records,
    decoder_for,
    iter_batches,
)
from rlds_hub.storage.selection import Selection

EPISODES_PER_GROUP = 64  # episodes applied as a PCollection are summarised in such groups


def partial_statistics(
    dataset: RLDSDataset,
    batches: Iterable[DecodedBatch],
    keys: list[str] | None,
    sketch_size: int,
    counter: execution.Counter | None = None,
) -> dict[str, Any]:
    """The mergeable statistics of some decoded batches: moments and a quantile sketch per
    feature, and the episodes' lengths and returns (in batch order)."""
    plan = table_plan(dataset)
    moments, _ = feature_moments(dataset, keys)
    sketches = {key: QuantileSketch(m.leaf.shape, sketch_size) for key, m in moments.items()}
    lengths, returns = [], []
    for batch in batches:
        update_moments(moments, batch)
        not_last = ~batch.last_step
        for key, sketch in sketches.items():
            values = batch.arrays[key]
            sketch.update(values if moments[key].all_steps else values[not_last])
        lengths.append(batch.num_steps)
        totals = batch_returns(plan, batch)
        if totals is not None:
            returns.append(totals)
        if counter is not None:
            counter.add(len(batch.num_steps))
    return {
        "moments": moments,
        "sketches": sketches,
        "lengths": np.concatenate(lengths) if lengths else np.zeros(0, np.int64),
        "returns": (np.concatenate(returns) if returns else np.zeros(0))
        if plan.reward_key is not None
        else None,
    }


def _decode_keys(dataset: RLDSDataset, keys: list[str] | None) -> set[str]:
    moments, _ = feature_moments(dataset, keys)
    return table_plan(dataset).step_keys | set(moments)


class _UnitStatistics(beam.DoFn):
    """One work unit's partial statistics, keyed by the unit (the order they merge in)."""

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
        selection = Selection(dataset, unit.split, unit.indices)
        batches = iter_batches(selection, keys=_decode_keys(dataset, self._keys))
        yield (
            unit.key,
            unit.split,
            partial_statistics(dataset, batches, self._keys, self._size, self._counter),
        )


class _GroupStatistics(beam.DoFn):
    """One group of encoded episodes' partial statistics (episodes in key order)."""

    def __init__(self, path: str, keys: list[str] | None, sketch_size: int):
        self._path, self._keys, self._size = path, keys, sketch_size

    def setup(self) -> None:
        self._dataset = open_dataset(self._path)
        self._decoder = decoder_for(self._dataset, _decode_keys(self._dataset, self._keys))

    def process(
        self, group: tuple[tuple, Iterable[EncodedEpisode]]
    ) -> Iterator[tuple[tuple, str, dict[str, Any]]]:
        (split, *key), episodes = group
        ordered = sorted(episodes, key=lambda e: e.key)
        records = [EpisodeRecord(int(e.key[-1]), "", 0, e.record) for e in ordered]
        arrays = decode_records(self._decoder, records)
        num_steps = arrays.pop(NUM_STEPS).astype(np.int64)
        indices = np.asarray([r.index for r in records], np.int64)
        batch = DecodedBatch(indices, num_steps, arrays)
        yield tuple(key), split, partial_statistics(self._dataset, [batch], self._keys, self._size)


def _group_key(episode: EncodedEpisode) -> tuple:
    """Groups of episodes that do not depend on the runner: split, then the key's blocks."""
    *prefix, index = episode.key
    return (episode.split, *prefix, int(index) // EPISODES_PER_GROUP)


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
    partials: list[Any], path: str, splits: Sequence[str] | None, keys: list[str] | None
) -> list[dict[str, Any]]:
    dataset = open_dataset(path)
    if splits is None:  # the splits the episodes were in: the dataset's order, then by name
        found = {p[1] for p in partials}
        splits = [s for s in dataset.splits if s in found] + sorted(found - set(dataset.splits))
    return merge_partials(dataset, partials, splits, keys)


class ComputeStatistics(beam.PTransform):
    """Per-split statistics (with quantiles) of one dataset's episodes: a PCollection of one
    result per split, each naming its ``split``. Two ways to apply it:

    - to the pipeline, with ``selections``: it reads them work unit by work unit (a shard
      or a record range), as the stats job does — no episode goes through a shuffle;
    - to ``EncodedEpisode`` s of ``dataset`` (``ReadEpisodes``, after a filter, ...):
      episodes are summarised in groups of 64 by key, so the numbers do not depend on the
      runner; one result per split the episodes are in.

    Partial results are merged in key order. Both ways give the same counts, lengths,
    returns and (while exact) quantiles; means and deviations agree to rounding.

    Args:
      source: :class:`~rlds_hub.storage.selection.Selection` s of one dataset, each of
        another split (e.g. :func:`rlds_hub.storage.query.select_splits`), or the
        :class:`~rlds_hub.storage.dataset.RLDSDataset` the episodes are from.
      keys: only these features (flattened names); None: every feature.
      sketch_size: points per element of the quantile sketches (exact up to this many values).
      progress_dir: where workers count the episodes they read (a progress bar's counters).
    """

    def __init__(
        self,
        source: Sequence[Selection] | RLDSDataset,
        *,
        keys: Sequence[str] | None = None,
        sketch_size: int = DEFAULT_SIZE,
        progress_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.keys = list(keys) if keys else None
        self.splits: list[str] | None = None
        self.units: list[RecordUnit] = []
        if isinstance(source, RLDSDataset):
            dataset = source
        else:
            selections = list(source)
            if not selections:
                raise ValueError("ComputeStatistics needs at least one selection, or a dataset")
            paths = {s.dataset.path for s in selections}
            if len(paths) != 1:
                raise ValueError(f"the selections must be of one dataset, got {sorted(paths)}")
            self.splits = [s.split for s in selections]
            if len(set(self.splits)) != len(self.splits):
                raise ValueError(f"{self.splits}: a split is named twice; statistics are per split")
            dataset = selections[0].dataset
            self.units = record_units(selections, 0)
        feature_moments(dataset, self.keys)  # a bad key fails here
        self._path = dataset.path
        self._size = sketch_size
        self._progress_dir = os.fspath(progress_dir) if progress_dir is not None else None

    @property
    def num_episodes(self) -> int:
        """Episodes of the selections (0 when applied to episodes)."""
        return sum(len(u.indices) for u in self.units)

    def expand(self, pvalue: Any) -> Any:
        if isinstance(pvalue, beam.pvalue.PBegin):
            if self.splits is None:
                raise ValueError(
                    "ComputeStatistics(dataset) summarises EncodedEpisodes: apply it to "
                    "ReadEpisodes(...)'s output, or give it selections to read"
                )
            partials = (
                pvalue
                | "Units" >> beam.Create(self.units)
                | "SpreadUnits" >> beam.Reshuffle()
                | "UnitStatistics"
                >> beam.ParDo(_UnitStatistics(self.keys, self._size, self._progress_dir))
            )
        else:
            partials = (
                pvalue
                | "Group" >> beam.Map(lambda e: (_group_key(e), e))
                | "GroupEpisodes" >> beam.GroupByKey()
                | "GroupStatistics"
                >> beam.ParDo(_GroupStatistics(self._path, self.keys, self._size))
            )
        return (
            partials
            | "Collect" >> beam.combiners.ToList()
            | "Merge" >> beam.FlatMap(_merge, self._path, self.splits, self.keys)
        )
