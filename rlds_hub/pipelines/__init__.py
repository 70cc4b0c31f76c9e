"""Beam jobs as modules: ``python -m rlds_hub.pipelines.<job> --input ... --output ...
[job options] [Beam options]``, one module per job of :mod:`rlds_hub.beam.jobs`
(``convert``, ``reshard``, ``filter``, ``map``, ``merge``, ``split``, ``stats``, ``export``).
Options Beam knows but these jobs do not declare (``--project``, ``--region``,
``--temp_location``, ...) are passed to Beam as they are, and an option neither declares is
an error that names the closest one. (In a checkout, ``python -m pipelines.<job>`` from the
repository root runs the same.)"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(job: str, argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Parses ``argv`` for ``job`` and runs it; user errors print one line and exit 2.
    ``prog`` names the entry point in messages (default ``rlds_hub.pipelines.<job>``)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from rlds_hub.beam.arguments import job_parser
    from rlds_hub.beam.commands import run_job

    prog = prog or f"rlds_hub.pipelines.{job}"
    parser = job_parser(job, prog=f"python -m {prog}")
    args = parser.parse_args(argv)  # Beam's options are kept, anything unknown refused
    try:
        return run_job(job, args)
    except (ValueError, OSError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was written", file=sys.stderr)
        return 130
