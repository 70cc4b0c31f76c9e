"""split: deterministic train/validation/test splits by a hash of each episode's id.

The id is the episode metadata field ``--id-key`` (default ``episode_id`` when the dataset has
it), otherwise ``<source split>/<episode index>``. An episode's split depends only on its id and
the seed, so re-running the job, on any runner, or adding episodes later, never moves an
episode to another split. Records are copied unchanged."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

from rlds_hub.beam.job_values import Output, Run, output_from_args
from rlds_hub.beam.jobs import common
from rlds_hub.beam.selection import parse_fractions
from rlds_hub.beam.transforms import AssignSplits
from rlds_hub.storage import dataset_files

JOB = "split"
DEFAULT_FRACTIONS = "train=0.8,validation=0.1,test=0.1"
DEFAULT_ID_KEY = "episode_id"


def split_dataset(
    input: str | os.PathLike,
    output: Output | str | os.PathLike,
    *,
    fractions: str | Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    id_key: str | None = None,
    split: str | None = None,
    run: Run | None = None,
) -> dict[str, Any]:
    """Writes the episodes of ``input`` (its ``split`` selection, default every split) into
    the splits named by ``fractions`` of ``output``. Splits that receive no episode are left
    out (the summary's ``empty_splits``)."""
    output = Output.of(output)
    output.refuse(JOB, "image_encoding")  # records are copied, never re-encoded
    shares = parse_fractions(fractions)
    for target in shares:
        dataset_files.check_split_name(target)
    dataset = common.open_input(input)
    metadata_keys = {name for name, _ in _table_metadata_names(dataset).values()}
    if id_key is None and DEFAULT_ID_KEY in metadata_keys:
        id_key = DEFAULT_ID_KEY
    elif id_key is not None and id_key not in metadata_keys:
        raise ValueError(
            f"--id-key {id_key!r} is not a scalar episode metadata field of "
            f"{dataset.path} (it has {sorted(metadata_keys) or 'none'})"
        )
    selections = common.input_selections(dataset, split)
    arguments = {
        "input": input,
        "fractions": shares,
        "seed": seed,
        "id_key": id_key or "<split>/<index>",
        "split": split,
    }
    summary = common.run_rlds_job(
        job_name=JOB,
        arguments=arguments,
        datasets=[dataset],
        selections=[selections],
        output=output,
        run=Run.of(run),
        transform="Assign" >> AssignSplits(shares, seed=seed, id_key=id_key),
        features_json=dataset.features_json,
        split_order=list(shares),
    )
    summary["empty_splits"] = [s for s in shares if s not in summary["splits"]]
    return summary


def _table_metadata_names(dataset: Any) -> dict[str, tuple[str, str]]:
    from rlds_hub.storage.episodes import table_plan

    return table_plan(dataset).metadata


def main(args: argparse.Namespace, flags: Sequence[str]) -> int:
    summary = split_dataset(
        args.input,
        output_from_args(args),
        fractions=args.fractions,
        seed=args.seed,
        id_key=args.id_key,
        split=args.split,
        run=Run(beam_args=flags, quiet=args.quiet),
    )
    common.print_summary(JOB, summary)
    if summary["empty_splits"]:
        print(f"no episode fell into {', '.join(summary['empty_splits'])} (left out)")
    return 0
