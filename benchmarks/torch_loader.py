"""PyTorch loader throughput: ``rlds_hub.data.torch.StepDataset`` under a ``DataLoader`` with
worker processes, side by side with the NumPy ``rlds_hub.data.steps`` loader, same cores.

Workload (``benchmarks.harness.StateEnv``): episodes of 84x84x3 uint8 camera frames (PNG, as
rlds_hub records them) with 6-d float32 actions, and the same with 17-d float32 state only.
Each loader reads two shuffled epochs of single steps with a frame history and an action
chunk (``--history``, ``--chunk``) in batches of 64, in a fresh process
(``harness.run_isolated``), and the second epoch is timed (the first starts the workers);
rounds are interleaved and medians reported.

- ``numpy steps``: ``data.steps`` (its reader thread and two worker threads);
- ``torch samples``: ``StepDataset`` + ``DataLoader(batch_size=64, num_workers=W)``, one
  sample at a time collated by torch (the LeRobot way);
- ``torch batches``: ``StepDataset(batch_size=64)`` + ``DataLoader(batch_size=None,
  num_workers=W)``: whole batches from each worker;
- ``torch batches, no workers``: the same in the training process (the NumPy loader's own
  threads decode; no batch crosses a process boundary).

The target (issue 18): torch >= 0.9 of the NumPy loader's rate with the same cores.

    python -m benchmarks.torch_loader [--rounds 3] [--episodes 40] [--steps 200] [--workers 2]
        [--workloads camera state] [--batch 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from typing import Any

from benchmarks import harness

BATCH = 64


def _epoch_numpy(path: str, history: int, chunk: int, batch: int = BATCH) -> dict[str, Any]:
    from rlds_hub import data

    loader = data.steps(
        path, batch_size=batch, history=history, action_chunk=chunk, shuffle_buffer=32
    )
    return _second_epoch(loader)


def _epoch_torch(
    path: str, history: int, chunk: int, workers: int, batched: bool, batch: int = BATCH
) -> dict:
    from torch.utils.data import DataLoader

    from rlds_hub.data.torch import StepDataset

    dataset = StepDataset(
        path, history=history, action_chunk=chunk, batch_size=batch if batched else None
    )
    loader = DataLoader(
        dataset,
        batch_size=None if batched else batch,
        num_workers=workers,
        prefetch_factor=4 if workers else None,
        persistent_workers=workers > 0,
    )
    return _second_epoch(loader)


def _second_epoch(loader: Any) -> dict[str, Any]:
    """Steps and seconds of the second of two epochs (the first starts the workers and
    warms the page cache)."""
    for _ in loader:
        pass
    started = time.perf_counter()
    count = 0
    for batch in loader:
        count += len(batch["step_index"])
    return {"seconds": time.perf_counter() - started, "steps": count}


def measure(
    mode: str, path: str, history: int, chunk: int, workers: int, batch: int = BATCH
) -> dict[str, Any]:
    """The second epoch of ``mode`` (run in a fresh process)."""
    if mode == "numpy steps":
        return _epoch_numpy(path, history, chunk, batch)
    if mode == "torch batches, no workers":
        return _epoch_torch(path, history, chunk, 0, batched=True, batch=batch)
    return _epoch_torch(path, history, chunk, workers, mode == "torch batches", batch)


MODES = ("numpy steps", "torch samples", "torch batches", "torch batches, no workers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=40, help="camera episodes")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--state-episodes", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--history", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "rlds_torch_bench"))
    parser.add_argument("--batch", type=int, default=BATCH, help="samples per batch")
    parser.add_argument(
        "--workloads", nargs="*", default=["camera", "state"], choices=["camera", "state"]
    )
    args = parser.parse_args()

    print(harness.machine_line(("numpy", "torch", "rlds_hub")))
    workloads = {}
    if "camera" in args.workloads:
        workloads["camera 84x84x3 PNG"] = _record(args, image=True)
    if "state" in args.workloads:
        workloads["state 17-d"] = _record(args, image=False, episodes=args.state_episodes)
    for name, path in workloads.items():
        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(args.rounds):
            for mode in MODES:
                config = {
                    "mode": mode,
                    "path": path,
                    "history": args.history,
                    "chunk": args.chunk,
                    "workers": args.workers,
                    "batch": args.batch,
                }
                result = harness.run_isolated("benchmarks.torch_loader:measure", config)
                if "error" in result:
                    raise SystemExit(f"{mode}: {result['error']}")
                rates[mode].append(result["steps"] / result["seconds"])
        medians = {mode: statistics.median(values) for mode, values in rates.items()}
        print(
            f"\n{name}: {_size(path)}, history {args.history}, "
            f"action chunk {args.chunk}, batches of {args.batch}, {args.workers} DataLoader workers; "
            f"second epoch, samples/s, median of {args.rounds}"
        )
        print(harness.ratio_table(medians, "numpy steps", what="loader", unit="samples/s"))


def _size(path: str) -> str:
    from rlds_hub.storage import open_dataset

    split = open_dataset(path).split("train")
    return f"{split.num_episodes} episodes of {os.path.basename(path).split('x')[-1]} steps"


def _record(args: argparse.Namespace, *, image: bool, episodes: int | None = None) -> str:
    """The workload recorded once (kept under ``--data``; reused when complete)."""
    import numpy as np

    from rlds_hub.testing import record

    episodes = episodes or args.episodes
    kind = "camera" if image else "state"
    path = os.path.join(args.data, f"{kind}_{episodes}x{args.steps}")
    if os.path.exists(os.path.join(path, "dataset_info.json")):
        return path
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    rng = np.random.default_rng(1)
    env = harness.StateEnv(episode_steps=args.steps, image=image)
    record(env, partial, episodes=episodes, policy=lambda _: harness.random_action(rng))
    os.replace(partial, path)
    return path


if __name__ == "__main__":
    main()
