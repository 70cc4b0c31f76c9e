"""Beam pipeline options for rlds_hub's jobs: the runner (DirectRunner by default, in
multi-processing mode; ``DaskRunner`` by its short name), and how a job runs a pipeline.

Beam 2.77 does not register the DaskRunner under its short name, so ``--runner=DaskRunner``
is translated here to the runner's full path. On the DaskRunner each element of a
``beam.Create`` becomes its own Dask partition unless ``--dask_npartitions`` or
``--dask_partition_size`` says otherwise: the jobs create one element per work unit (a
shard, a range of records, a log directory), and Beam's default of 128 elements per
partition would put a whole small job on one worker.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Sequence
from typing import Any

DEFAULT_RUNNER = "DirectRunner"
RUNNER_ALIASES = {
    "DaskRunner": "apache_beam.runners.dask.dask_runner.DaskRunner",
    "dask": "apache_beam.runners.dask.dask_runner.DaskRunner",
    "direct": "DirectRunner",
}
RUNNING_MODES = ("multi_processing", "multi_threading", "in_memory")


def add_beam_arguments(
    parser: argparse.ArgumentParser, runner_default: str | None = DEFAULT_RUNNER
) -> None:
    """The Beam options every job takes (others go through ``--beam-option``)."""
    group = parser.add_argument_group("Beam options")
    group.add_argument(
        "--runner",
        default=runner_default,
        help="Beam runner: DirectRunner, DaskRunner, DataflowRunner, "
        "FlinkRunner, SparkRunner, or a runner's full class path",
    )
    group.add_argument(
        "--direct_num_workers",
        "--direct-num-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="DirectRunner: worker processes",
    )
    group.add_argument(
        "--direct_running_mode",
        "--direct-running-mode",
        default="multi_processing",
        choices=RUNNING_MODES,
        help="DirectRunner: how workers run",
    )
    group.add_argument(
        "--dask_client_address",
        "--dask-client-address",
        default=None,
        metavar="HOST:PORT",
        help="DaskRunner: the dask.distributed scheduler to submit to "
        "(default: a new LocalCluster)%(default).0s",
    )
    group.add_argument(
        "--beam-option",
        "--beam_option",
        action="append",
        default=[],
        dest="beam_options",
        metavar="FLAG",
        help="any other Beam pipeline option, passed as is (repeatable), e.g. "
        "--beam-option=--project=my-project",
    )


def beam_flags(args: argparse.Namespace, extra: Sequence[str] = ()) -> list[str]:
    """The Beam command-line flags that ``args`` (from :func:`add_beam_arguments`) mean."""
    runner = RUNNER_ALIASES.get(args.runner or DEFAULT_RUNNER, args.runner or DEFAULT_RUNNER)
    flags = [f"--runner={runner}"]
    if runner in ("DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner"):
        if args.direct_num_workers < 1:
            raise ValueError(f"--direct_num_workers must be >= 1, got {args.direct_num_workers}")
        flags += [
            f"--direct_num_workers={args.direct_num_workers}",
            f"--direct_running_mode={args.direct_running_mode}",
        ]
    if is_dask(runner) and args.dask_client_address:
        flags.append(f"--dask_client_address={args.dask_client_address}")
    passed = [flag for option in args.beam_options for flag in shlex.split(option)]
    passed += list(getattr(args, "beam_passthrough", ()))
    unknown = unknown_beam_flags(passed)
    if unknown:
        flag = unknown[0]
        raise ValueError(
            f"--beam-option {flag}: not a Beam pipeline option"
            f"{suggestion(flag)}; see Beam's PipelineOptions for the options "
            "each runner takes"
        )
    return normalize_flags(flags + passed + list(extra))


def _beam_parser() -> argparse.ArgumentParser:
    """An argument parser holding every option of every registered ``PipelineOptions``
    class (what Beam parses a pipeline's flags with)."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    class Parser(_BeamArgumentParser):
        def error(self, message: str):  # a bad value: the caller says which flag
            raise ValueError(message)

    parser = Parser(allow_abbrev=False, add_help=False)
    classes = {str(cls): cls for cls in PipelineOptions.__subclasses__()}
    for cls in classes.values():
        cls._add_argparse_args(parser)
    return parser


def beam_option_strings() -> list[str]:
    """Every flag Beam knows (``--runner``, ``--project``, ...), the DaskRunner's included."""
    import apache_beam.runners.dask.dask_runner  # noqa: F401  (registers DaskOptions)

    return [o for action in _beam_parser()._actions for o in action.option_strings]


def unknown_beam_flags(flags: Sequence[str]) -> list[str]:
    """The flags among ``flags`` that no Beam ``PipelineOptions`` class declares (Beam
    itself drops them with a log line; a misspelt option would be silently ignored)."""
    flags = list(flags)
    if not flags:
        return []
    _, unknown = _beam_parser().parse_known_args(flags)
    if unknown:  # the DaskRunner's options are registered when its module is imported
        import apache_beam.runners.dask.dask_runner  # noqa: F401

        _, unknown = _beam_parser().parse_known_args(flags)
    return [flag for flag in unknown if flag.startswith("-")] or (
        [f"{unknown[0]!r} (a value without an option)"] if unknown else []
    )


def suggestion(flag: str, candidates: Sequence[str] | None = None) -> str:
    """``" (did you mean --min-return?)"`` for the closest of ``candidates`` (default: Beam's
    flags), or ``""``."""
    import difflib

    name = flag.split("=", 1)[0]
    found = difflib.get_close_matches(
        name, candidates if candidates is not None else beam_option_strings(), n=1, cutoff=0.7
    )
    return f" (did you mean {found[0]}?)" if found else ""


def normalize_flags(flags: Sequence[str]) -> list[str]:
    """Beam flags with rlds_hub's defaults: the runner's short names resolved, one Dask
    partition per work unit, and quiet workers (see the module docstring)."""
    out = []
    for flag in flags:
        name, sep, value = flag.partition("=")
        if name == "--runner" and sep:
            flag = f"--runner={RUNNER_ALIASES.get(value, value)}"
        out.append(flag)
    runner = next(
        (f.partition("=")[2] for f in reversed(out) if f.startswith("--runner=")), DEFAULT_RUNNER
    )

    def given(prefix: str) -> bool:
        return any(f.startswith(prefix) for f in out)

    if is_dask(runner) and not (given("--dask_npartitions") or given("--dask_partition_size")):
        out.append("--dask_partition_size=1")
    if not given("--default_sdk_harness_log_level"):
        out.append("--default_sdk_harness_log_level=WARNING")  # workers' INFO chatter
    if not given("--sdk_harness_log_level_overrides"):
        # A failed element's traceback: the driver re-raises its message (file, episode).
        out.append(
            '--sdk_harness_log_level_overrides={"apache_beam.runners.common": '
            '"CRITICAL", "apache_beam.runners.worker.sdk_worker": "CRITICAL"}'
        )
    return out


def is_dask(runner: str) -> bool:
    return RUNNER_ALIASES.get(runner, runner).endswith("DaskRunner")


def pipeline_options(flags: Sequence[str]) -> Any:
    """``PipelineOptions`` from Beam flags; an unknown runner fails here, clearly."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(normalize_flags(flags))


def describe_runner(flags: Sequence[str]) -> dict[str, Any]:
    """The runner part of the flags, for provenance (no credentials: only runner flags)."""
    keep = (
        "--runner",
        "--direct_num_workers",
        "--direct_running_mode",
        "--dask_client_address",
        "--dask_partition_size",
        "--dask_npartitions",
    )
    out: dict[str, Any] = {}
    for flag in flags:
        name, _, value = flag.partition("=")
        if name in keep:
            out[name.lstrip("-")] = value
    return out
