"""The ``rlds-hub`` command line.

Subcommands of other packages (pipelines, the service, the learners) register themselves
through ``add_commands(subparsers)`` in the modules listed in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from rlds_hub.command_line import (
    Formatter,
    import_tensorflow_quietly,
    subparser,
    tensorflow_available,
    warnings_through,
)
from rlds_hub.extras import extra_for

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Modules that add subcommands (each defines ``add_commands(subparsers)``); missing ones
# are skipped, so a package can be left out of an installation.
COMMAND_MODULES = (
    "rlds_hub.beam.commands",
    "rlds_hub.server.commands",
    "rlds_hub.learners.commands",
)
EXIT_INTERRUPTED = 130
__all__ = ["build_parser", "import_tensorflow_quietly", "main", "subparser"]


class _StopRequest:
    """The first Ctrl-C asks the recording loop to stop after the current step; a second
    one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopRequest:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


def _record(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rlds_hub.envs import canonical_env_name, make_env, make_policy
    from rlds_hub.recorders import Recorder

    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    env_name = canonical_env_name(args.env)
    env = make_env(env_name, seed=args.seed)
    if args.policy.startswith("checkpoint:"):
        from rlds_hub.learners import load_policy

        policy = load_policy(args.policy.split(":", 1)[1])
    else:
        policy = make_policy(args.policy, env_name, env, seed=args.seed)
    started = time.perf_counter()
    returns: list[float] = []
    recorder = Recorder(
        env,
        args.out,
        name=args.name,
        split=args.split,
        max_episodes_per_shard=args.max_episodes_per_shard,
        file_format=args.file_format,
        env_name=env_name,
        policy_name=args.policy,
        seed=args.seed,
        durability=args.durability,
        image_encoding=args.image_encoding,
        # Ctrl-C drops the interrupted episode; a Riegeli log cannot (it keeps every step)
        save_unfinished_episodes=args.file_format == "riegeli",
        allow_env_change=args.allow_env_change,
    )
    bar = tqdm(total=args.episodes, unit="episode", disable=args.quiet)
    with _StopRequest() as stop, warnings_through(bar.write), recorder, bar:
        for _ in range(args.episodes):
            timestep = recorder.reset()
            policy.reset()
            total = 0.0
            while not timestep.last() and not stop.requested:
                timestep = recorder.step(policy(timestep))
                total += float(timestep.reward)
            if stop.requested and not timestep.last():
                break
            returns.append(total)
            bar.update(1)
            bar.set_postfix(ret=f"{total:.1f}")
            if stop.requested:
                break
    elapsed = time.perf_counter() - started
    steps = recorder.steps_recorded
    kept = recorder.episodes_recorded
    summary = (
        f"{kept} episodes ({steps:,} steps) of {env_name} with policy {args.policy!r} to "
        f"{args.out} in {elapsed:.1f} s ({steps / max(elapsed, 1e-9):,.0f} steps/s)"
    )
    if returns:
        summary += (
            f"; return mean {sum(returns) / len(returns):.2f}, min {min(returns):.2f}, "
            f"max {max(returns):.2f}"
        )
    if stop.requested:
        print(
            f"interrupted: kept {summary}; the episode in progress was dropped, every "
            f"completed episode is on disk ({recorder.num_episodes} in split "
            f"{args.split!r})",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(f"recorded {summary}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from rlds_hub.inspection.info import format_summary, summarize
    from rlds_hub.storage.names import resolve

    args.path = resolve(args.path)
    summary = summarize(args.path)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    if args.plot:
        from rlds_hub.inspection.plots import plot_episodes

        plot_episodes(args.path, args.plot)
        if not args.quiet:
            print(f"wrote {args.plot}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rlds_hub.inspection.validate import format_report, validate
    from rlds_hub.storage.dataset import open_dataset

    if args.drop_corrupt and not args.repair:
        raise ValueError("--drop-corrupt only works with --repair (it is a way to repair)")
    if args.repair:
        from rlds_hub.storage.repair import repair

        result = repair(args.path, drop_corrupt=args.drop_corrupt)
        for action in result.actions:
            print(f"repaired: {action}")
        for dropped in result.dropped:
            print(f"dropped: {dropped.describe()}")
        for problem in result.problems:
            print(f"cannot repair: {problem}", file=sys.stderr)
        if not result.actions and not result.problems:
            print(f"nothing to repair in {result.path}")
        if not result.ok:
            return 1
    use_tf = not args.no_tensorflow and tensorflow_available()
    if use_tf:
        import_tensorflow_quietly()
    dataset = open_dataset(args.path)
    splits = args.split or sorted(dataset.splits)
    total = sum(dataset.split(s).num_episodes for s in splits)
    with tqdm(total=total, unit="episode", disable=args.quiet) as bar:
        report = validate(dataset, splits=splits, progress=bar.update, tensorflow=use_tf)
    print(format_report(report, limit=args.limit))
    return 0 if report.ok else 1


def _stats(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rlds_hub.inspection.stats import (
        feature_moments,
        print_statistics,
        save_statistics,
        statistics,
    )
    from rlds_hub.storage.dataset import open_dataset
    from rlds_hub.storage.names import resolve

    dataset = open_dataset(resolve(args.path))
    splits = [args.split] if args.split else sorted(dataset.splits)
    for split in splits:
        dataset.split(split)
    feature_moments(dataset, args.key or None)  # a bad --key fails before any progress
    if args.save and args.key:
        raise ValueError("--save stores statistics of every feature; drop --key")
    results = []
    for split in splits:
        total = dataset.split(split).num_episodes
        with tqdm(total=total, unit="episode", disable=args.quiet or args.json, desc=split) as bar:
            results.append(
                statistics(
                    dataset,
                    split,
                    keys=args.key or None,
                    progress=lambda done, bar=bar: bar.update(done - bar.n),
                )
            )
    target = None
    if args.save:
        target = save_statistics(dataset.path, results, computed_by="rlds-hub stats")
    print_statistics(results, as_json=args.json, saved=None if args.quiet else target)
    return 0


def _version() -> str:
    """``rlds-hub X.Y.Z (Python A.B.C)``."""
    import platform

    from rlds_hub._version import __version__

    return f"rlds-hub {__version__} (Python {platform.python_version()})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlds-hub",
        formatter_class=Formatter,
        description="Record, inspect, check, process, serve and learn from RLDS datasets.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    record = subparser(
        commands,
        "record",
        help="record episodes of an environment",
        description="Record episodes of an environment with a policy into an "
        "RLDS dataset directory (appended to if it holds a dataset). Ctrl-C "
        "stops after the current step, keeping every completed episode.",
    )
    record.add_argument(
        "--env", required=True, help="dm_control/<domain>-<task> or gym/<id> (e.g. gym/Pendulum-v1)"
    )
    record.add_argument(
        "--policy",
        required=True,
        help="random, expert (scripted, for the demo tasks), or checkpoint:DIR (a trained learner)",
    )
    record.add_argument("--episodes", type=int, default=10, help="episodes to record")
    record.add_argument("--out", required=True, help="dataset directory (appended to if present)")
    record.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the environment and the policy (stored in metadata)",
    )
    record.add_argument("--split", default="train", help="split to record into")
    record.add_argument("--name", default=None, help="TFDS dataset name (default: from --out)")
    record.add_argument(
        "--max-episodes-per-shard", type=int, default=1000, help="episodes per shard file"
    )
    record.add_argument(
        "--file-format",
        default="tfrecord",
        choices=["tfrecord", "array_record", "riegeli"],
        help="shard format",
    )
    record.add_argument(
        "--durability",
        default=None,
        choices=["process", "os"],
        help="process (the default): survives the process dying; os: also power loss",
    )
    record.add_argument(
        "--image-encoding",
        default=None,
        choices=["png", "raw"],
        help="how uint8 image observations are stored (both lossless; default png)",
    )
    record.add_argument(
        "--allow-env-change",
        action="store_true",
        help="append to a dataset recorded from another environment",
    )
    record.add_argument("--quiet", action="store_true", help="no progress bar")
    record.set_defaults(run=_record)

    info = subparser(commands, "info", help="features, splits, counts, sessions, size")
    info.add_argument("path", help="dataset directory")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument(
        "--plot", default=None, metavar="PNG", help="also write a PNG of returns and lengths"
    )
    info.add_argument("--quiet", action="store_true", help="print nothing but the summary")
    info.set_defaults(run=_info)

    stats = subparser(commands, "stats", help="per-feature statistics, returns and lengths")
    stats.add_argument("path", help="dataset directory")
    stats.add_argument("--split", default=None, help="only this split (default: every split)")
    stats.add_argument(
        "--key", action="append", help="only this feature, e.g. observation/position (repeatable)"
    )
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.add_argument(
        "--save",
        action="store_true",
        help="store the statistics with the dataset (statistics.json)",
    )
    stats.add_argument("--quiet", action="store_true", help="no progress bar")
    stats.set_defaults(run=_stats)

    check = subparser(
        commands,
        "validate",
        help="check the RLDS contract on every episode",
        description="Check every episode and shard; with --repair, first "
        "rebuild lost metadata from the shards and remove what an interrupted "
        "writer left behind (never a listed episode).",
    )
    check.add_argument("path", help="dataset directory")
    check.add_argument("--split", action="append", help="only this split (repeatable)")
    check.add_argument("--limit", type=int, default=50, help="problems to print (-1: all)")
    check.add_argument(
        "--repair",
        action="store_true",
        help="rebuild missing dataset_info.json / features.json / "
        "episodes.jsonl and remove leftovers, then validate",
    )
    check.add_argument(
        "--drop-corrupt",
        action="store_true",
        help="with --repair: rewrite each corrupt shard with every record that "
        "can still be read and drop the rest, saying exactly what (the "
        "originals are kept in .rlds_hub-salvage/)",
    )
    check.add_argument(
        "--no-tensorflow",
        action="store_true",
        help="skip parsing every episode with TFDS's own parser",
    )
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(run=_validate)

    for module in COMMAND_MODULES:
        try:
            extension = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and module.startswith(e.name):
                continue  # that package is not part of this installation
            raise
        extension.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rlds_hub.recorders.recorder import RecordingError

    try:
        return args.run(args)
    except (ValueError, OSError, RecordingError) as e:
        print(f"rlds-hub {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        missing = extra_for(e)  # an optional dependency: say which extra brings it
        if missing is None:
            raise
        print(f"rlds-hub {args.command}: error: {missing}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rlds-hub {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
