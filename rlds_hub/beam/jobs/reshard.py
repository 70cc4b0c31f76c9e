"""reshard: rewrite a dataset with other shard counts or sizes, or in the other file format
(TFRecord <-> ArrayRecord). Records are copied as they are (no decode, no re-encode)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from rlds_hub.beam.job_values import Output, Run, output_from_args
from rlds_hub.beam.jobs import common

JOB = "reshard"


def reshard(
    input: str | os.PathLike,
    output: Output | str | os.PathLike,
    *,
    split: str | None = None,
    run: Run | None = None,
) -> dict[str, Any]:
    """Rewrites ``input`` (the ``split`` selection, default every split) into ``output``
    with its sharding and file format (default: the input's)."""
    output = Output.of(output)
    output.refuse(JOB, "image_encoding")  # records are copied, never re-encoded
    dataset = common.open_input(input)
    selections = common.input_selections(dataset, split)
    return common.run_rlds_job(
        job_name=JOB,
        arguments={"input": input, "split": split},
        datasets=[dataset],
        selections=[selections],
        output=output,
        run=Run.of(run),
        transform=None,
        features_json=dataset.features_json,
        split_order=[s.split for s in selections],
    )


def main(args: argparse.Namespace, flags: Sequence[str]) -> int:
    summary = reshard(
        args.input,
        output_from_args(args),
        split=args.split,
        run=Run(beam_args=flags, quiet=args.quiet),
    )
    common.print_summary(JOB, summary)
    return 0
