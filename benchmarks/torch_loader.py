"""PyTorch loader throughput: ``rlds_hub.data.torch.StepDataset`` under a ``DataLoader``,
side by side with the NumPy ``rlds_hub.data.steps`` loader, same cores, and torch's own floor.

Workload (``benchmarks.harness.StateEnv``): episodes of 84x84x3 uint8 camera frames (PNG, as
rlds_hub records them) with 6-d float32 actions, and the same with 17-d float32 state only.
Each loader reads two shuffled epochs of single steps with a frame history and an action
chunk (``--history``, ``--chunk``) in batches of each ``--batch`` size, in a fresh process
(``harness.run_isolated``), and the epochs after the first are timed (the first starts the
workers; ``--epochs N``: the median of N epochs per run); rounds are interleaved, medians
reported, and each row's ratio to ``numpy steps`` is the median of the rounds' ratios.

- ``numpy steps``: ``data.steps`` (its reader thread and two worker threads);
- ``torch samples``: ``StepDataset`` + ``DataLoader(batch_size=B, num_workers=W)``, one
  sample at a time collated by torch (the LeRobot way);
- ``torch batches``: ``StepDataset(batch_size=B)`` + ``DataLoader(batch_size=None,
  num_workers=W)``: whole batches from each worker;
- ``torch batches, no workers``: the same in the training process, torch's default
  ``collate_fn`` (``default_convert``);
- ``torch loader()``: ``StepDataset(batch_size=B).loader()`` — no workers, the pass-through
  ``collate_fn``, no profiler range per batch (``StepLoader``);
- ``torch floor``: the ``DataLoader``'s own cost per batch, the ceiling of the torch arm:
  ``loader()``'s ``StepLoader(batch_size=None, collate_fn=passthrough)`` over a trivial
  ``IterableDataset`` yielding one prebuilt batch of the same tensors as many times as an
  epoch has batches; ``torch floor, plain DataLoader``: the same through torch's own
  ``DataLoader``. ``bound`` = the NumPy loader with only the floor added per batch,
  ``1 / (1/numpy + 1/floor)``: what a torch arm over the NumPy loader's batches reaches at
  best; its ratio is printed too.

The target (issue 18): torch >= 0.9 of the NumPy loader's rate with the same cores.

    python -m benchmarks.torch_loader [--rounds 3] [--episodes 40] [--steps 200] [--workers 2]
        [--workloads camera state] [--batch 64 256 1024] [--epochs 5] [--modes ...]
        [--json out.json]

The state-only headline (issue 18 item 3): the arms side by side in one process, 30 cycles
per batch size (robust to a changing load; about 1 minute on 2 quiet cores):

    python -m benchmarks.torch_loader --workloads state --batch 64 256 1024 --paired 30 \
        --json torch_paired.json

and each arm in fresh processes, rounds interleaved (about 4 minutes on 2 quiet cores):

    python -m benchmarks.torch_loader --workloads state --batch 64 256 1024 --rounds 3 \
        --epochs 5 --modes "torch batches" "torch batches, no workers" "torch loader()" \
        "torch floor" "torch floor, plain DataLoader" --json torch_loader.json
"""

from __future__ import annotations

import argparse
import json
import math
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


def _epoch_loader(path: str, history: int, chunk: int, batch: int) -> dict:
    from rlds_hub.data.torch import StepDataset

    dataset = StepDataset(path, history=history, action_chunk=chunk, batch_size=batch)
    return _second_epoch(dataset.loader())


def _epoch_floor(path: str, history: int, chunk: int, batch: int, plain: bool = False) -> dict:
    """torch's own per-batch cost: one prebuilt batch, as many times as an epoch has, through
    the ``DataLoader`` ``loader()`` makes (``plain``: torch's own ``DataLoader``, with its
    profiler range per batch)."""
    from torch.utils.data import DataLoader, IterableDataset

    from rlds_hub.data.torch import StepDataset, StepLoader, passthrough

    dataset = StepDataset(path, history=history, action_chunk=chunk, batch_size=batch)
    prebuilt = next(iter(dataset))
    batches = math.ceil(int(dataset._lengths.sum()) / batch)

    class Prebuilt(IterableDataset):
        def __iter__(self):
            for _ in range(batches):
                yield prebuilt

    kind = DataLoader if plain else StepLoader
    return _second_epoch(kind(Prebuilt(), batch_size=None, collate_fn=passthrough))


EPOCHS = 1  # timed epochs per measurement (set by --epochs in each child's config)


def _second_epoch(loader: Any) -> dict[str, Any]:
    """Steps and seconds of an epoch after the first (which starts the workers and warms the
    page cache): with ``EPOCHS`` > 1, the median of that many epochs, so one preemption of
    an epoch of tens of milliseconds does not decide the figure."""
    for _ in loader:
        pass
    times, count = [], 0
    for _ in range(EPOCHS):
        started = time.perf_counter()
        count = 0
        for batch in loader:
            count += len(batch["step_index"])
        times.append(time.perf_counter() - started)
    return {"seconds": statistics.median(times), "steps": count, "epochs": times}


def measure(
    mode: str,
    path: str,
    history: int,
    chunk: int,
    workers: int,
    batch: int = BATCH,
    epochs: int = 1,
) -> dict[str, Any]:
    """The epochs after the first of ``mode`` (run in a fresh process; ``_second_epoch``)."""
    global EPOCHS
    EPOCHS = epochs
    if mode == "numpy steps":
        return _epoch_numpy(path, history, chunk, batch)
    if mode == "torch batches, no workers":
        return _epoch_torch(path, history, chunk, 0, batched=True, batch=batch)
    if mode == "torch loader()":
        return _epoch_loader(path, history, chunk, batch)
    if mode.startswith("torch floor"):
        return _epoch_floor(path, history, chunk, batch, plain=mode.endswith("DataLoader"))
    return _epoch_torch(path, history, chunk, workers, mode == "torch batches", batch)


def paired(path: str, history: int, chunk: int, batch: int, pairs: int) -> dict[str, Any]:
    """The arms side by side in one process, epoch after epoch, in a rotating order: each
    cycle times one epoch of every arm, so a ratio within a cycle compares epochs run
    moments apart (robust to a machine whose load changes from one process to the next)."""
    from torch.utils.data import DataLoader, IterableDataset

    from rlds_hub import data
    from rlds_hub.data.torch import StepDataset, StepLoader, passthrough

    numpy_loader = data.steps(
        path, batch_size=batch, history=history, action_chunk=chunk, shuffle_buffer=32
    )
    dataset = StepDataset(path, history=history, action_chunk=chunk, batch_size=batch)
    prebuilt = next(iter(dataset))
    batches = math.ceil(int(dataset._lengths.sum()) / batch)

    class Prebuilt(IterableDataset):
        def __iter__(self):
            for _ in range(batches):
                yield prebuilt

    arms = {
        "numpy steps": numpy_loader,
        "torch loader()": dataset.loader(),
        "torch batches, no workers": DataLoader(dataset, batch_size=None),
        "torch floor": StepLoader(Prebuilt(), batch_size=None, collate_fn=passthrough),
    }
    for loader in arms.values():  # warm-up
        for _ in loader:
            pass
    rates: dict[str, list[float]] = {name: [] for name in arms}
    names = list(arms)
    for cycle in range(pairs):
        for name in names[cycle % len(names) :] + names[: cycle % len(names)]:
            started, count = time.perf_counter(), 0
            for item in arms[name]:
                count += len(item["step_index"])
            rates[name].append(count / (time.perf_counter() - started))
    return {"rates": rates}


MODES = (
    "numpy steps",
    "torch samples",
    "torch batches",
    "torch batches, no workers",
    "torch loader()",
    "torch floor",
    "torch floor, plain DataLoader",
)


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
    parser.add_argument("--batch", type=int, nargs="+", default=[BATCH], help="batch sizes")
    parser.add_argument(
        "--epochs", type=int, default=1, help="timed epochs per run (the median is kept)"
    )
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument(
        "--paired",
        type=int,
        default=0,
        help="instead: N cycles of the arms side by side in one process per batch size",
    )
    parser.add_argument(
        "--workloads", nargs="*", default=["camera", "state"], choices=["camera", "state"]
    )
    args = parser.parse_args()
    modes = ["numpy steps", *(m for m in args.modes if m != "numpy steps")]

    print(harness.machine_line(("numpy", "torch", "rlds_hub")), flush=True)
    workloads = {}
    if "camera" in args.workloads:
        workloads["camera 84x84x3 PNG"] = _record(args, image=True)
    if "state" in args.workloads:
        workloads["state 17-d"] = _record(args, image=False, episodes=args.state_episodes)
    results = []
    if args.paired:
        for name, path in workloads.items():
            for batch in args.batch:
                results.append(_paired(args, name, path, batch))
        workloads = {}
    for name, path in workloads.items():
        for batch in args.batch:
            rates: dict[str, list[float]] = {mode: [] for mode in modes}
            for round_ in range(args.rounds):
                for mode in modes:
                    config = {
                        "mode": mode,
                        "path": path,
                        "history": args.history,
                        "chunk": args.chunk,
                        "workers": args.workers,
                        "batch": batch,
                        "epochs": args.epochs,
                    }
                    result = harness.run_isolated("benchmarks.torch_loader:measure", config)
                    if "error" in result:
                        raise SystemExit(f"{mode}: {result['error']}")
                    rates[mode].append(result["steps"] / result["seconds"])
                print(
                    f"  {name}, batches of {batch}, round {round_ + 1}/{args.rounds} done "
                    f"(load {harness.load_average()})",
                    flush=True,
                )
            if "torch floor" in rates:
                rates["bound (numpy + floor per batch)"] = [
                    1 / (1 / n + 1 / f)
                    for n, f in zip(rates["numpy steps"], rates["torch floor"], strict=True)
                ]
            ratios = {
                mode: [v / n for v, n in zip(values, rates["numpy steps"], strict=True)]
                for mode, values in rates.items()
            }
            print(
                f"\n{name}: {_size(path)}, history {args.history}, action chunk {args.chunk}, "
                f"batches of {batch}, {args.workers} DataLoader workers; median of "
                f"{args.epochs} epoch(s) after the first per run, samples/s, median of "
                f"{args.rounds} runs (ratio: median of the rounds' ratios)"
            )
            print(
                harness.table(
                    ["loader", "samples/s", "/ numpy steps", "rounds"],
                    [
                        (
                            mode,
                            harness.si(statistics.median(values)),
                            f"{statistics.median(ratios[mode]):.2f}",
                            ", ".join(f"{r:.2f}" for r in ratios[mode]),
                        )
                        for mode, values in rates.items()
                    ],
                ),
                flush=True,
            )
            results.append({"workload": name, "batch": batch, "rates": rates, "ratios": ratios})
    print(f"load average at the end: {harness.load_average()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": harness.machine(), "results": results}, f, indent=1)


def _paired(args: argparse.Namespace, name: str, path: str, batch: int) -> dict[str, Any]:
    """One ``paired`` run (a fresh process), printed: each arm's median rate and the median of
    its per-cycle ratios to ``numpy steps``."""
    config = {
        "path": path,
        "history": args.history,
        "chunk": args.chunk,
        "batch": batch,
        "pairs": args.paired,
    }
    load = harness.load_average()
    result = harness.run_isolated("benchmarks.torch_loader:paired", config)
    if "error" in result:
        raise SystemExit(f"paired: {result['error']}")
    rates = result["rates"]
    numpy_rates = rates["numpy steps"]
    rates["bound (numpy + floor per batch)"] = [
        1 / (1 / n + 1 / f) for n, f in zip(numpy_rates, rates["torch floor"], strict=True)
    ]
    ratios = {
        arm: [v / n for v, n in zip(values, numpy_rates, strict=True)]
        for arm, values in rates.items()
    }
    print(
        f"\n{name}: {_size(path)}, history {args.history}, action chunk {args.chunk}, "
        f"batches of {batch}, no workers; {args.paired} cycles of one epoch per arm in one "
        f"process (load {load} at the start, {harness.load_average()} at the end)"
    )
    print(
        harness.table(
            ["loader", "samples/s (median)", "/ numpy steps (median of cycles)", "quartiles"],
            [
                (
                    arm,
                    harness.si(statistics.median(values)),
                    f"{statistics.median(ratios[arm]):.2f}",
                    " - ".join(f"{q:.2f}" for q in _quartiles(ratios[arm])),
                )
                for arm, values in rates.items()
            ],
        ),
        flush=True,
    )
    return {"workload": name, "batch": batch, "paired": True, "rates": rates, "ratios": ratios}


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (math.nan, math.nan)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


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
