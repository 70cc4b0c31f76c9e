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
from collections.abc import Sequence
from typing import Any

import apache_beam as beam

from rlds_hub.beam import execution
from rlds_hub.beam.job_values import Run
from rlds_hub.beam.jobs import common
from rlds_hub.beam.options import describe_runner
from rlds_hub.beam.quantiles import DEFAULT_SIZE
from rlds_hub.beam.statistics import ComputeStatistics
from rlds_hub.inspection.stats import print_statistics, save_statistics
from rlds_hub.storage.dataset import open_dataset
from rlds_hub.storage.dataset_files import STATISTICS

JOB = "stats"


def _result_path(scratch: str, split: str) -> str:
    return os.path.join(scratch, f"result-{split}.pickle")  # split names are [A-Za-z0-9_]


def _write_result(result: dict[str, Any], scratch: str) -> None:
    path = _result_path(scratch, result["split"])
    with open(path + ".tmp", "wb") as f:
        pickle.dump(result, f)
    os.replace(path + ".tmp", path)


def compute_statistics(
    input: str | os.PathLike,
    *,
    split: str | None = None,
    keys: Sequence[str] | None = None,
    save: bool = True,
    output: str | os.PathLike | None = None,
    sketch_size: int = DEFAULT_SIZE,
    run: Run | None = None,
) -> list[dict[str, Any]]:
    """Statistics of each split of ``input`` (the ``split`` selection's splits, default every
    split); stored with the dataset when ``save``, and written to ``output`` (a JSON file)
    if given. Returns one result per split, in the selection's order."""
    run = Run.of(run)
    dataset = open_dataset(input)
    selections = common.input_selections(dataset, split)
    if len({s.split for s in selections}) != len(selections):
        raise ValueError(f"{split!r} names a split twice; statistics are per split")
    flags = run.flags()
    scratch = _scratch_dir(dataset.path)
    try:
        statistics = ComputeStatistics(  # a bad key fails here, before the pipeline
            selections, keys=keys, sketch_size=sketch_size, progress_dir=scratch
        )
        if save and keys:
            raise ValueError("saved statistics cover every feature; drop keys (--key) or --no-save")

        def build(pipeline: Any) -> None:
            _ = pipeline | "Statistics" >> statistics | "Write" >> beam.Map(_write_result, scratch)

        execution.run_pipeline(
            flags,
            build,
            total=statistics.num_episodes,
            description=JOB,
            quiet=run.quiet,
            progress_dir=scratch,
        )
        results = []
        for split_name in statistics.splits:
            with open(_result_path(scratch, split_name), "rb") as f:
                results.append(pickle.load(f))
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
        run=Run(beam_args=flags, quiet=args.quiet or args.json),
    )
    saved = save and not args.json
    print_statistics(
        results, as_json=args.json, saved=os.path.join(path, STATISTICS) if saved else None
    )
    return 0
