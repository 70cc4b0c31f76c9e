"""The ``rlds-hub`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow_quietly() -> None:
    """Imports TensorFlow with C++ start-up chatter (oneDNN, CUDA probing) kept off stderr.

    TF 2.21 logs those lines before it reads TF_CPP_MIN_LOG_LEVEL. Set RLDS_HUB_DEBUG=1 to
    see them.
    """
    if os.environ.get("RLDS_HUB_DEBUG") or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow

        tensorflow.constant(0).numpy()  # device setup logs (e.g. a failed cuInit) go here too
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _record(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rlds_hub.envs import canonical_env_name, make_env, make_policy
    from rlds_hub.recorders import Recorder

    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    env_name = canonical_env_name(args.env)
    env = make_env(env_name, seed=args.seed)
    policy = make_policy(args.policy, env_name, env, seed=args.seed)
    started = time.perf_counter()
    returns = []
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
        save_unfinished_episodes=False,
    )
    with recorder, tqdm(total=args.episodes, unit="episode", disable=args.quiet) as bar:
        for _ in range(args.episodes):
            timestep = recorder.reset()
            policy.reset()
            total = 0.0
            while not timestep.last():
                timestep = recorder.step(policy(timestep))
                total += float(timestep.reward)
            returns.append(total)
            bar.update(1)
            bar.set_postfix(ret=f"{total:.1f}")
    elapsed = time.perf_counter() - started
    steps = recorder.steps_recorded
    print(
        f"recorded {len(returns)} episodes ({steps:,} steps) of {env_name} with policy "
        f"{args.policy!r} to {args.out} in {elapsed:.1f} s ({steps / elapsed:,.0f} steps/s); "
        f"return mean {sum(returns) / len(returns):.2f}, min {min(returns):.2f}, "
        f"max {max(returns):.2f}"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    from rlds_hub.info import format_summary, summarize

    summary = summarize(args.path)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    if args.plot:
        from rlds_hub.plots import plot_episodes

        plot_episodes(args.path, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rlds_hub.dataset import open_dataset
    from rlds_hub.validate import format_report, validate

    dataset = open_dataset(args.path)
    splits = args.split or sorted(dataset.splits)
    total = sum(dataset.split(s).num_episodes for s in splits)
    with tqdm(total=total, unit="episode", disable=args.quiet) as bar:
        report = validate(args.path, splits=splits, progress=bar.update)
    print(format_report(report, limit=args.limit))
    return 0 if report.ok else 1


def _stats(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rlds_hub.data import format_statistics, statistics
    from rlds_hub.dataset import open_dataset

    dataset = open_dataset(args.path)
    total = dataset.split(args.split).num_episodes
    with tqdm(total=total, unit="episode", disable=args.quiet or args.json) as bar:
        result = statistics(dataset, args.split, keys=args.key or None,
                            progress=lambda done: bar.update(done - bar.n))
    print(json.dumps(result, indent=2) if args.json else format_statistics(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlds-hub", description="Record, inspect, check and summarise RLDS datasets."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    record = commands.add_parser("record", help="record episodes of an environment")
    record.add_argument("--env", required=True,
                        help="dm_control/<domain>-<task> or gym/<id> (e.g. gym/Pendulum-v1)")
    record.add_argument("--policy", default="random", help="random or expert")
    record.add_argument("--episodes", type=int, default=10)
    record.add_argument("--out", required=True, help="dataset directory (appended to if present)")
    record.add_argument("--seed", type=int, default=None)
    record.add_argument("--split", default="train")
    record.add_argument("--name", default=None, help="TFDS dataset name (default: from --out)")
    record.add_argument("--max-episodes-per-shard", type=int, default=1000)
    record.add_argument("--file-format", default="tfrecord",
                        choices=["tfrecord", "array_record", "riegeli"])
    record.add_argument("--durability", default="process", choices=["process", "os"])
    record.add_argument("--image-encoding", default="png", choices=["png", "raw"])
    record.add_argument("--quiet", action="store_true", help="no progress bar")
    record.set_defaults(run=_record)

    info = commands.add_parser("info", help="features, splits, counts, metadata and size")
    info.add_argument("path")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("--plot", default=None, help="write a PNG of returns and lengths")
    info.set_defaults(run=_info)

    stats = commands.add_parser("stats", help="per-feature statistics, returns and lengths")
    stats.add_argument("path")
    stats.add_argument("--split", default="train")
    stats.add_argument("--key", action="append", help="only this feature (repeatable)")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.add_argument("--quiet", action="store_true", help="no progress bar")
    stats.set_defaults(run=_stats)

    check = commands.add_parser("validate", help="check the RLDS contract on every episode")
    check.add_argument("path")
    check.add_argument("--split", action="append", help="only this split (repeatable)")
    check.add_argument("--limit", type=int, default=50, help="problems to print")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(run=_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _import_tensorflow_quietly()
    from rlds_hub.recorders.recorder import RecordingError

    try:
        return args.run(args)
    except (ValueError, OSError, RecordingError) as e:
        print(f"rlds-hub {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
