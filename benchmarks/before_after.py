"""Before and after a change, in one run: recording overhead and read throughput of an older
rlds_hub tree (a ``git worktree`` of an earlier commit) against this one, interleaved in
fresh processes, with envlogger's Riegeli writer and the NumPy-gather ceiling measured in the
same rounds.

Run from the repository root:

    git worktree add /tmp/before <commit>
    python -m benchmarks.before_after --before /tmp/before [--rounds 3] [--steps 50000]

Each round runs, each in its own process: recording (rlds_hub interleaved with its bare
environment, per tree; envlogger Riegeli interleaved with its bare environment), then reading
(rlds_hub's ``transitions`` for one and five epochs, per tree; the ceiling). The workloads
and the measuring code are this tree's (``record_overhead.py``, ``read_throughput.py``); a
measurement of the older tree runs in a child interpreter with that tree on its
``PYTHONPATH`` (``harness.run_isolated(..., tree=...)``), which checks that the child
imported that tree's ``rlds_hub``. The older tree must have the APIs the workloads call:
``Recorder(env, path, durability=..., image_encoding=...)`` and ``data.transitions``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from typing import Any

from benchmarks import harness, read_throughput


def record(tree: str | None, mode: str, steps: int) -> dict[str, Any]:
    """``mode``'s cost over its bare env (us/step, total and median episode), in a child."""
    measured = harness.run_isolated(
        "benchmarks.record_overhead:interleaved",
        {"modes": ["bare", mode], "steps": steps, "image": False},
        tree=tree,
    )
    if "error" in measured:
        return measured
    bare, ours = measured["bare"], measured[mode]
    return {
        "over_bare": ours["us_per_step"] - bare["us_per_step"],
        "median_over_bare": ours["median_episode_us_per_step"] - bare["median_episode_us_per_step"],
    }


def read(tree: str | None, mode: str, root: str) -> dict[str, Any]:
    """One read measurement of ``read_throughput``'s ``mode``, in a child."""
    return harness.run_isolated(
        "benchmarks.read_throughput:measure", {"mode": mode, "root": root}, tree=tree
    )


def _median(values: list[dict], key: str) -> float:
    ok = [v[key] for v in values if key in v]
    return statistics.median(ok) if ok else float("nan")


def _rate(values: list[dict]) -> float:
    ok = [v["items"] / v["seconds"] for v in values if "items" in v]
    return statistics.median(ok) if ok else float("nan")


def report(rec: dict[str, list[dict]], rd: dict[str, list[dict]]) -> str:
    """The two Markdown tables (recording, reading)."""
    peer = _median(rec["envlogger_riegeli"], "over_bare")
    rows = []
    for name in ("before", "after"):
        over = _median(rec[name], "over_bare")
        rows.append(
            (
                f"rlds_hub {name}",
                f"+{over:.2f}",
                f"+{_median(rec[name], 'median_over_bare'):.2f}",
                f"{peer / over:.1f}x",
            )
        )
    rows.append(
        (
            "envlogger 1.2 Riegeli",
            f"+{peer:.2f}",
            f"+{_median(rec['envlogger_riegeli'], 'median_over_bare'):.2f}",
            "1.0x",
        )
    )
    recording = harness.table(
        [
            "recording (17-d float32, 1000-step episodes)",
            "us/step over its bare env",
            "median episode",
            "envlogger Riegeli / this",
        ],
        rows,
    )
    ceiling = _rate(rd["ceiling"])
    titles = {
        "before 1": "rlds_hub before, 1 epoch",
        "after 1": "rlds_hub after, 1 epoch",
        "before 5": "rlds_hub before, 5 epochs",
        "after 5": "rlds_hub after, 5 epochs",
        "ceiling": "ceiling: NumPy shuffled gather in memory",
    }
    reading = harness.table(
        ["reading (shuffled batches of 256)", "transitions/s", "x ceiling", "memory added"],
        [
            (
                title,
                harness.si(_rate(rd[key])),
                f"{_rate(rd[key]) / ceiling:.2f}",
                f"{_median(rd[key], 'added_mb'):.0f} MiB" if key != "ceiling" else "",
            )
            for key, title in titles.items()
        ],
    )
    return recording + "\n\n" + reading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="the older tree (a git worktree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50_000, help="recorded steps per run")
    parser.add_argument("--episodes", type=int, default=200, help="episodes of the read set")
    args = parser.parse_args()
    before = os.path.abspath(args.before)
    if not os.path.exists(os.path.join(before, "rlds_hub", "__init__.py")):
        parser.error(f"--before {args.before}: no rlds_hub/__init__.py there (a git worktree)")
    root = os.path.join(tempfile.gettempdir(), f"rlds_read_bench_{args.episodes}")
    print("Before/after, " + harness.machine_line(), flush=True)
    read_throughput.make_datasets(root, args.episodes)
    trees = {"before": before, "after": None}  # None: this tree
    rec: dict[str, list[dict]] = {"before": [], "after": [], "envlogger_riegeli": []}
    rd: dict[str, list[dict]] = {
        k: [] for k in ("before 1", "after 1", "before 5", "after 5", "ceiling")
    }
    for r in range(args.rounds):
        for name, tree in trees.items():
            rec[name].append(record(tree, "rlds_hub", args.steps))
        rec["envlogger_riegeli"].append(record(None, "envlogger_riegeli", args.steps))
        for name, tree in trees.items():
            rd[f"{name} 1"].append(read(tree, "rlds_hub", root))
            rd[f"{name} 5"].append(read(tree, "rlds_hub_5epochs", root))
        rd["ceiling"].append(read(None, "ceiling", root))
        print(
            f"round {r + 1}: " + json.dumps({k: v[-1] for k, v in {**rec, **rd}.items()}),
            file=sys.stderr,
            flush=True,
        )
    print(f"median of {args.rounds} interleaved rounds\n")
    print(report(rec, rd))


if __name__ == "__main__":
    main()
