"""merge: several datasets with the same features into one (splits joined by name, inputs in
the order given). Records are copied unchanged; mismatched features are refused with every
difference listed."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from rlds_hub.beam.job_values import Output, Run, output_from_args
from rlds_hub.beam.jobs import common
from rlds_hub.format.metadata import MergedInput
from rlds_hub.format.plan import Plan
from rlds_hub.storage import dataset_files
from rlds_hub.storage.dataset import RLDSDataset
from rlds_hub.storage.episodes import dataset_layout

JOB = "merge"


class IncompatibleDatasetsError(dataset_files.DatasetError):
    """Datasets whose features (or layouts) differ."""


class DuplicateInputError(dataset_files.DatasetError):
    """The same dataset given twice."""


def plan_differences(first: Plan, other: Plan) -> list[str]:
    """Every leaf that differs between two plans, in words."""
    out = []
    for key in sorted({leaf.key for leaf in first} | {leaf.key for leaf in other}):
        a, b = first.get(key), other.get(key)
        if b is None:
            out.append(f"{key}: only in the first dataset")
        elif a is None:
            out.append(f"{key}: not in the first dataset")
        else:
            for attr in ("kind", "dtype", "shape", "image_format"):
                if getattr(a, attr) != getattr(b, attr):
                    out.append(f"{key}: {attr} {getattr(a, attr)} != {getattr(b, attr)}")
    return out


def check_compatible(datasets: Sequence[RLDSDataset]) -> None:
    problems = []
    first = datasets[0]
    for other in datasets[1:]:
        differences = plan_differences(first.plan, other.plan)
        if dataset_layout(first) != dataset_layout(other):
            differences.append(f"layout: {dataset_layout(first)} != {dataset_layout(other)}")
        if first.file_format != other.file_format:
            pass  # shards are re-framed: any mix of formats merges
        problems += [f"{other.path}: {d}" for d in differences]
    if problems:
        raise IncompatibleDatasetsError(
            f"cannot merge: the inputs differ from {first.path}:\n  "
            + "\n  ".join(problems)
            + "\nconvert them to the same features first (e.g. with `rlds-hub map`)"
        )


def check_distinct(inputs: Sequence[str | os.PathLike]) -> None:
    """Refuses a dataset given twice (by any path to it): merging it with itself would
    silently write every one of its episodes twice.

    Raises:
      DuplicateInputError: naming the inputs that are the same dataset.
    """
    seen: dict[str, int] = {}
    for number, path in enumerate(inputs, 1):
        real = os.path.realpath(os.fspath(path))
        if real in seen:
            raise DuplicateInputError(
                f"cannot merge: inputs {seen[real]} and {number} ({os.fspath(path)}) are the "
                "same dataset, so every one of its episodes would be written twice; give each "
                "dataset once (to repeat episodes on purpose, merge a copy made with "
                "`rlds-hub reshard`)"
            )
        seen[real] = number


def merge(
    inputs: Sequence[str | os.PathLike],
    output: Output | str | os.PathLike,
    *,
    split: str | None = None,
    run: Run | None = None,
) -> dict[str, Any]:
    """Merges ``inputs`` (each's ``split`` selection, default every split) into ``output``
    (name and file format default to the first input's)."""
    output = Output.of(output)
    output.refuse(JOB, "image_encoding")  # records are copied, never re-encoded
    if len(inputs) < 2:
        raise ValueError(f"merge needs at least two inputs, got {len(inputs)}")
    check_distinct(inputs)
    datasets = [common.open_input(p) for p in inputs]
    check_compatible(datasets)
    selections = [common.input_selections(d, split) for d in datasets]
    order = list(dict.fromkeys(s.split for sel in selections for s in sel))
    return common.run_rlds_job(
        job_name=JOB,
        arguments={"inputs": list(inputs), "split": split},
        datasets=datasets,
        selections=selections,
        output=output,
        run=Run.of(run),
        transform=None,  # the inputs' episodes, flattened, are the merge
        features_json=datasets[0].features_json,
        split_order=order,
        extra_metadata={
            "merged_from": tuple(
                MergedInput(path=os.path.abspath(d.path), name=d.name, metadata=d.dataset_metadata)
                for d in datasets
            )
        },
    )


def main(args: argparse.Namespace, flags: Sequence[str]) -> int:
    summary = merge(
        args.input,
        output_from_args(args),
        split=args.split,
        run=Run(beam_args=flags, quiet=args.quiet),
    )
    common.print_summary(JOB, summary)
    return 0
