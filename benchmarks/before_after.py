"""Before and after a change, in one run: recording overhead and read throughput of an older
rlds_hub tree (a ``git worktree`` of an earlier commit) against this one, interleaved in
fresh processes, with envlogger's Riegeli writer and the NumPy-gather ceiling measured in the
same rounds.

    git worktree add /tmp/before <commit>
    python benchmarks/before_after.py --before /tmp/before [--rounds 3] [--steps 50000]

Each round runs, each in its own process: recording (rlds_hub interleaved with its bare
environment, per tree; envlogger Riegeli interleaved with its bare environment), then reading
(rlds_hub's ``transitions`` for one and five epochs, per tree; the ceiling). The workloads
are those of ``record_overhead.py`` and ``read_throughput.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NEW_TREE = os.path.dirname(HERE)

_PRELUDE = """
import json, os, sys
tree = {tree!r}
if tree != {new!r}:  # import the other tree's rlds_hub, not the editable install
    sys.meta_path[:] = [f for f in sys.meta_path
                        if "Editable" not in getattr(f, "__name__", type(f).__name__)]
    sys.path.insert(0, tree)
sys.path.insert(0, os.path.join(tree, "benchmarks"))
"""


def _run(tree: str, body: str) -> dict:
    code = _PRELUDE.format(tree=tree, new=NEW_TREE) + body
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1])


def record(tree: str, mode: str, steps: int) -> dict:
    bare = "bare"
    result = _run(
        tree,
        f"""
import record_overhead as r
res = r.interleaved([{bare!r}, {mode!r}], {steps}, False)
print(json.dumps({{"over_bare": res[{mode!r}]["us_per_step"] - res[{bare!r}]["us_per_step"],
                  "median_over_bare": res[{mode!r}]["median_episode_us_per_step"]
                      - res[{bare!r}]["median_episode_us_per_step"]}}))
""",
    )
    return result


def read(tree: str, mode: str, root: str) -> dict:
    return _run(
        tree,
        f"""
import read_throughput as r
print(json.dumps(r.measure({mode!r}, {root!r})))
""",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="the older tree (a git worktree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50_000, help="recorded steps per run")
    parser.add_argument("--episodes", type=int, default=200, help="episodes of the read set")
    args = parser.parse_args()
    root = os.path.join(tempfile.gettempdir(), f"rlds_read_bench_{args.episodes}")
    sys.path.insert(0, HERE)
    import read_throughput

    read_throughput.make_datasets(root, args.episodes)
    trees = {"before": os.path.abspath(args.before), "after": NEW_TREE}
    rec: dict[str, list[dict]] = {"before": [], "after": [], "envlogger_riegeli": []}
    rd: dict[str, list[dict]] = {
        k: [] for k in ("before 1", "after 1", "before 5", "after 5", "ceiling")
    }
    for r in range(args.rounds):
        for name, tree in trees.items():
            rec[name].append(record(tree, "rlds_hub", args.steps))
        rec["envlogger_riegeli"].append(record(NEW_TREE, "envlogger_riegeli", args.steps))
        for name, tree in trees.items():
            rd[f"{name} 1"].append(read(tree, "rlds_hub", root))
            rd[f"{name} 5"].append(read(tree, "rlds_hub_5epochs", root))
        rd["ceiling"].append(read(NEW_TREE, "ceiling", root))
        print(
            f"round {r + 1}: " + json.dumps({k: v[-1] for k, v in {**rec, **rd}.items()}),
            file=sys.stderr,
            flush=True,
        )

    def med(values: list[dict], key: str) -> float:
        ok = [v[key] for v in values if key in v]
        return statistics.median(ok) if ok else float("nan")

    def rate(values: list[dict]) -> float:
        ok = [v["items"] / v["seconds"] for v in values if "items" in v]
        return statistics.median(ok) if ok else float("nan")

    peer = med(rec["envlogger_riegeli"], "over_bare")
    lines = [
        f"Before/after, {time.strftime('%Y-%m-%d')}, {platform.node()} ({os.cpu_count()} CPUs), "
        f"median of {args.rounds} interleaved rounds",
        "",
        "| recording (17-d float32, 1000-step episodes) | us/step over its bare env | "
        "median episode | envlogger Riegeli / this |",
        "| --- | --- | --- | --- |",
    ]
    for name in ("before", "after"):
        over = med(rec[name], "over_bare")
        lines.append(
            f"| rlds_hub {name} | +{over:.2f} | +{med(rec[name], 'median_over_bare'):.2f}"
            f" | {peer / over:.1f}x |"
        )
    lines.append(
        f"| envlogger 1.2 Riegeli | +{peer:.2f} | "
        f"+{med(rec['envlogger_riegeli'], 'median_over_bare'):.2f} | 1.0x |"
    )
    ceiling = rate(rd["ceiling"])
    lines += [
        "",
        "| reading (200 x 1000 steps, shuffled batches of 256) | transitions/s | x ceiling |",
        "| --- | --- | --- |",
    ]
    for key, title in (
        ("before 1", "rlds_hub before, 1 epoch"),
        ("after 1", "rlds_hub after, 1 epoch"),
        ("before 5", "rlds_hub before, 5 epochs"),
        ("after 5", "rlds_hub after, 5 epochs"),
        ("ceiling", "ceiling: NumPy shuffled gather in memory"),
    ):
        value = rate(rd[key])
        lines.append(f"| {title} | {value / 1e6:.2f}M | {value / ceiling:.2f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
