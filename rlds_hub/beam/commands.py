"""``rlds-hub convert|reshard|filter|map|merge|split|stats|export``: the Beam jobs on the
command line (the same code as ``python -m rlds_hub.pipelines.<job>``).

``rlds-hub stats`` already exists in the core CLI (in-process statistics); it gains the Beam
options here, and runs the Beam job (which adds per-feature quantiles) when ``--runner`` is
given. Importing this module does not import Beam.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable, Sequence
from typing import Any

from rlds_hub.beam.arguments import DESCRIPTIONS, HELP, job_parser
from rlds_hub.beam.jobs import JOBS
from rlds_hub.beam.options import add_beam_arguments, beam_flags
from rlds_hub.storage.dataset_files import STATISTICS


def run_job(job: str, args: argparse.Namespace, extra_flags: Sequence[str] = ()) -> int:
    """Runs ``job`` with parsed arguments (Beam flags from them plus ``extra_flags``)."""
    flags = beam_flags(args, extra_flags)
    quiet_beam_logs()
    module = importlib.import_module(f"rlds_hub.beam.jobs.{job}")
    return module.main(args, flags)


def quiet_beam_logs() -> None:
    """Keeps Beam's own tracebacks of a failed element off the terminal (the job re-raises
    the error with its message: file, episode, which the command prints), and the warning
    Beam's import logs about optional Google Cloud clients."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # Beam's import warns that optional GCP clients are missing
    try:
        import apache_beam  # noqa: F401
    finally:
        root.setLevel(level)
    for name in (
        "apache_beam.runners.common",
        "apache_beam.runners.worker",
        "apache_beam.runners.portability",
        "apache_beam.runners.direct",
    ):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _runner(job: str) -> Callable[[argparse.Namespace], int]:
    return lambda args: run_job(job, args)


def add_commands(commands: Any) -> None:
    """Adds the jobs to the ``rlds-hub`` subcommands (see the module docstring)."""
    from rlds_hub.command_line import subparser

    for job in JOBS:
        if job in commands.choices:
            if job == "stats":
                _extend_stats(commands.choices["stats"])
            continue
        parser = subparser(commands, job, help=HELP[job], description=DESCRIPTIONS[job])
        job_parser(job, parser)
        parser.set_defaults(run=_runner(job))


def _extend_stats(parser: argparse.ArgumentParser) -> None:
    """Beam options for the core ``rlds-hub stats``: with ``--runner`` it runs the job."""
    core_run = parser.get_default("run")
    add_beam_arguments(parser, runner_default=None)

    def run(args: argparse.Namespace) -> int:
        if args.runner is None:
            return core_run(args)
        quiet_beam_logs()
        from rlds_hub.beam.job_values import Run
        from rlds_hub.beam.jobs.stats import compute_statistics
        from rlds_hub.inspection.stats import print_statistics

        results = compute_statistics(
            args.path,
            split=args.split,
            keys=args.key,
            save=bool(args.save),
            run=Run(beam_args=beam_flags(args), quiet=args.quiet or args.json),
        )
        saved = args.save and not args.quiet
        print_statistics(
            results,
            as_json=args.json,
            saved=os.path.join(args.path, STATISTICS) if saved else None,
        )
        return 0

    parser.set_defaults(run=run)
    parser.epilog = (
        "With --runner (DirectRunner, DaskRunner, ...) the statistics are "
        "computed by the Beam stats job, which adds per-feature quantiles."
    )
