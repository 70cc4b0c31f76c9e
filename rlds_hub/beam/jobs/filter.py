"""filter: keep the episodes that pass a predicate on their metadata or computed quantities
(length, return, termination), or a seeded random fraction. Records are copied unchanged."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from rlds_hub.beam.functions import ShippedFunction, load_function
from rlds_hub.beam.job_values import Output, Run, output_from_args
from rlds_hub.beam.jobs import common
from rlds_hub.beam.selection import EpisodeFilter
from rlds_hub.beam.transforms import FilterEpisodes

JOB = "filter"


def filter_dataset(
    input: str | os.PathLike,
    output: Output | str | os.PathLike,
    *,
    split: str | None = None,
    where: Callable[[dict[str, Any]], Any] | str | None = None,
    metadata: dict[str, Any] | None = None,
    fraction: float | None = None,
    seed: int = 0,
    run: Run | None = None,
    **filters: Any,
) -> dict[str, Any]:
    """Writes the episodes of ``input`` that pass every condition (see
    :class:`~rlds_hub.beam.selection.EpisodeFilter`; ``where`` may be ``module:function``)
    to ``output``."""
    output = Output.of(output)
    output.refuse(JOB, "image_encoding")  # records are copied, never re-encoded
    shipped = ShippedFunction(load_function(where)) if where is not None else None
    keep = EpisodeFilter(
        filters=filters, metadata=metadata, where=shipped, fraction=fraction, seed=seed
    )
    dataset = common.open_input(input)
    selections = common.input_selections(dataset, split)
    return common.run_rlds_job(
        job_name=JOB,
        arguments={"input": input, "split": split, **keep.describe()},
        datasets=[dataset],
        selections=[selections],
        output=output,
        run=Run.of(run),
        transform="Filter" >> FilterEpisodes(keep),
        features_json=dataset.features_json,
        split_order=[s.split for s in selections],
    )


def parse_metadata(pairs: Sequence[str]) -> dict[str, Any]:
    """``["operator=alice", "task_id=3"]`` -> ``{"operator": "alice", "task_id": 3}``
    (values are JSON when they parse as JSON, text otherwise)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--metadata {pair!r}: use KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(args: argparse.Namespace, flags: Sequence[str]) -> int:
    terminated = True if args.terminated else (False if args.truncated else None)
    summary = filter_dataset(
        args.input,
        output_from_args(args),
        split=args.split,
        where=args.where,
        metadata=parse_metadata(args.metadata),
        fraction=args.fraction,
        seed=args.seed,
        run=Run(beam_args=flags, quiet=args.quiet),
        min_length=args.min_length,
        max_length=args.max_length,
        min_return=args.min_return,
        max_return=args.max_return,
        terminated=terminated,
    )
    common.print_summary(JOB, summary)
    print(f"kept {sum(summary['splits'].values())} of {summary['input_episodes']} episodes")
    return 0
