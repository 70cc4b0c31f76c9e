"""Beam jobs as modules: ``python -m pipelines.<job> --input ... --output ... [job options]
[Beam options]``. Each is a thin entry point to :mod:`rlds_hub.beam.jobs`; options Beam
knows but these jobs do not declare (``--project``, ``--region``, ``--temp_location``, ...)
are passed to Beam as they are, and an option neither declares is an error that names the
closest one."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(job: str, argv: Sequence[str] | None = None) -> int:
    """Parses ``argv`` for ``job`` and runs it; user errors print one line and exit 2."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from rlds_hub.beam.arguments import job_parser
    from rlds_hub.beam.commands import run_job

    parser = job_parser(job)
    args = parser.parse_args(argv)  # Beam's options are kept, anything unknown refused
    try:
        return run_job(job, args)
    except (ValueError, OSError) as e:
        print(f"pipelines.{job}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pipelines.{job}: interrupted; nothing was written", file=sys.stderr)
        return 130
