"""reshard: rewrite a dataset with other shard counts or sizes, or in the other file format
(TFRecord <-> ArrayRecord). Records are copied as they are (no decode, no re-encode)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from rlds_hub.beam.jobs import common
from rlds_hub.beam.sink import Sharding

JOB = "reshard"


def reshard(
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    split: str | None = None,
    sharding: Sharding | None = None,
    file_format: str | None = None,
    name: str | None = None,
    overwrite: bool = False,
    beam_args: Sequence[str] | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Rewrites ``input`` (the ``split`` selection, default every split) into ``output``
    with ``sharding`` and ``file_format`` (default: the input's format)."""
    dataset = common.open_input(input)
    selections = common.input_selections(dataset, split)
    sharding = sharding or Sharding()
    file_format = file_format or dataset.file_format
    arguments = {
        "input": input,
        "output": output,
        "split": split,
        "sharding": vars(sharding),
        "file_format": file_format,
        "name": name,
    }
    return common.run_rlds_job(
        job_name=JOB,
        arguments=arguments,
        datasets=[dataset],
        selections=[selections],
        output=output,
        overwrite=overwrite,
        flags=common.default_flags(beam_args),
        transform=None,
        features_json=dataset.features_json,
        name=name,
        file_format=file_format,
        sharding=sharding,
        split_order=[s.split for s in selections],
        quiet=quiet,
    )


def main(args: argparse.Namespace, flags: Sequence[str]) -> int:
    summary = reshard(
        args.input,
        args.output,
        split=args.split,
        sharding=common.sharding_from_args(args),
        file_format=args.file_format,
        name=args.name,
        overwrite=args.overwrite,
        beam_args=flags,
        quiet=args.quiet,
    )
    common.print_summary(JOB, summary)
    return 0
