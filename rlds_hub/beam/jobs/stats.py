"""stats: per-feature mean/std/min/max and quantiles, episode length and return
distributions, computed by workers shard by shard and stored with the dataset
(``statistics.json``, through :func:`rlds_hub.inspection.stats.save_statistics`), where
``saved_statistics()``, the service and the learners (normalisation) find them.

The JSON has exactly the shape of :func:`rlds_hub.inspection.stats.statistics` (the moments are
its :class:`~rlds_hub.inspection.stats.Moments`, merged across workers) plus, per feature,
``p5``, ``p25``, ``p50``, ``p75``, ``p95`` (shaped like the feature) and
``quantile_rank_error`` (see :mod:`rlds_hub.beam.quantiles`). Partial results are merged in
work-unit order, so every runner gives the same numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np

from rlds_hub.beam import execution
from rlds_hub.beam.jobs import common
from rlds_hub.beam.options import describe_runner
from rlds_hub.beam.quantiles import DEFAULT_SIZE, QuantileSketch, merge_all
from rlds_hub.beam.reading import RecordUnit, record_units
from rlds_hub.inspection.stats import (
    QUANTILES,
    feature_moments,
    format_statistics,
    save_statistics,
    summarize,
    update_moments,
)
from rlds_hub.storage.dataset import open_dataset
from rlds_hub.storage.episodes import batch_returns, table_plan
from rlds_hub.storage.reader import iter_batches
from rlds_hub.storage.selection import Selection

JOB = "stats"
_RESULT = "partials.pickle"


class _UnitStatistics(beam.DoFn):
    def __init__(self, keys: list[str] | None, sketch_size: int, progress_dir: str):
        self._keys = keys
        self._size = sketch_size
        self._progress_dir = progress_dir

    def setup(self) -> None:
        self._datasets: dict[str, Any] = {}
        self._counter = execution.Counter(self._progress_dir)

    def teardown(self) -> None:
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


def _write_partials(partials: list[Any], path: str) -> None:
    with open(path + ".tmp", "wb") as f:
        pickle.dump(sorted(partials, key=lambda p: p[0]), f)
    os.replace(path + ".tmp", path)


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


def compute_statistics(
    input: str | os.PathLike,
    *,
    split: str | None = None,
    keys: Sequence[str] | None = None,
    save: bool = True,
    output: str | os.PathLike | None = None,
    sketch_size: int = DEFAULT_SIZE,
    beam_args: Sequence[str] | None = None,
    quiet: bool = True,
) -> list[dict[str, Any]]:
    """Statistics of each split of ``input`` (the ``split`` selection's splits, default every
    split); stored with the dataset when ``save``, and written to ``output`` (a JSON file)
    if given. Returns one result per split."""
    dataset = open_dataset(input)
    selections = common.input_selections(dataset, split)
    if len({s.split for s in selections}) != len(selections):
        raise ValueError(f"{split!r} names a split twice; statistics are per split")
    keys = list(keys) if keys else None
    feature_moments(dataset, keys)  # a bad key fails before the pipeline
    if save and keys:
        raise ValueError("saved statistics cover every feature; drop keys (--key) or --no-save")
    units = record_units(selections, 0)
    flags = common.default_flags(beam_args)
    scratch = _scratch_dir(dataset.path)
    result_path = os.path.join(scratch, _RESULT)
    try:

        def build(pipeline: Any) -> None:
            _ = (
                pipeline
                | "Units" >> beam.Create(units)
                | "SpreadUnits" >> beam.Reshuffle()
                | "UnitStatistics" >> beam.ParDo(_UnitStatistics(keys, sketch_size, scratch))
                | "Collect" >> beam.combiners.ToList().without_defaults()
                | "Write" >> beam.Map(_write_partials, result_path)
            )

        execution.run_pipeline(
            flags,
            build,
            total=sum(len(u.indices) for u in units),
            description=JOB,
            quiet=quiet,
            progress_dir=scratch,
        )
        partials = []
        if os.path.exists(result_path):
            with open(result_path, "rb") as f:
                partials = pickle.load(f)
        results = merge_partials(dataset, partials, [s.split for s in selections], keys)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if save:
        save_statistics(
            dataset.path,
            results,
            computed_by="rlds-hub stats (Beam)",
            time=execution.now(),
            runner=describe_runner(flags),
            sketch_size=sketch_size,
        )
    if output is not None:
        with open(output, "w") as f:
            json.dump(results[0] if len(results) == 1 else results, f, indent=1)
    return results


def _scratch_dir(dataset_path: str) -> str:
    """A scratch directory the workers can reach: inside the dataset (hidden), else /tmp."""
    try:
        return tempfile.mkdtemp(prefix=".tmp-stats-", dir=dataset_path)
    except OSError:
        return tempfile.mkdtemp(prefix="rlds-hub-stats-")


def main(args: argparse.Namespace, flags: Sequence[str]) -> int:
    path = args.input or args.path
    if path is None:
        raise ValueError("name the dataset: rlds-hub stats PATH (or --input PATH)")
    save = not args.no_save and not args.key
    results = compute_statistics(
        path,
        split=args.split,
        keys=args.key,
        save=save,
        output=args.output,
        beam_args=flags,
        quiet=args.quiet or args.json,
    )
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    else:
        print("\n\n".join(format_statistics(r) for r in results))
        if save:
            print(f"saved {os.path.join(path, 'statistics.json')}")
    return 0
