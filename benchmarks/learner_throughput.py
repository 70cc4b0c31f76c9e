"""BC learner throughput: updates/s fed from disk, from the in-memory sampler, and from
synthetic batches already on the device — side by side in one run.

Workload (the peers' learner ceiling): a 3x256 ReLU MLP, batch 256, 17-d float32
observations, 6-d float32 actions in [-1, 1], ``lax.scan`` of 100 updates per call. The
dataset (100 episodes x 1000 steps of ``benchmarks.harness.StateEnv``, recorded with rlds_hub's
Recorder) is written once to ``--data``.

- (a) loader: ``rlds_hub.data.transitions`` over the dataset on disk (shuffled, endless),
  re-batched and stacked on a background thread, placed on the device per call;
- (b) sampler: ``rlds_hub.data.InMemorySampler.from_dataset`` — the data on the device,
  batches drawn there;
- (c) synthetic (ceiling): one stacked batch already on the device, reused every call (no
  input work at all);
- (d) for reference, one update per call with a NumPy batch from the host (what a naive
  loop does).

Target (issue 10): (a) and (b) >= 0.9 of (c).

Run from the repository root:

    python -m benchmarks.learner_throughput [--data DIR] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from typing import Any

from benchmarks import harness

EPISODES = 100


def make_dataset(path: str) -> str:
    """The workload's dataset (``harness.StateEnv``), recorded once and reused."""
    return harness.record_dataset(path, EPISODES, env_name="random-17d")


def measure(step: Any, seconds: float, updates_per_call: int) -> tuple[float, float]:
    """(updates per wall-clock second, updates per CPU-second of this process, all threads)
    of ``step()``, warmed up, timed until ``seconds`` pass, synchronised.

    On a shared machine the wall-clock rate moves with other people's load; the CPU-time
    rate counts only this process's work (the learner's and its input pipeline's), so it is
    the fairer comparison of what each feed costs."""
    import jax

    jax.block_until_ready(step())
    jax.block_until_ready(step())
    calls, started, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        out = step()
        calls += 1
        if calls % 5 == 0:
            jax.block_until_ready(out)
            if time.perf_counter() - started >= seconds:
                break
    jax.block_until_ready(out)
    updates = calls * updates_per_call
    return (
        updates / (time.perf_counter() - started),
        updates / max(time.process_time() - cpu, 1e-9),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="out/throughput/random-17d")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="rounds over all feeds (the best round of each is reported)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*x64 mode is off")
    import jax
    import jax.numpy as jnp

    from rlds_hub.data import InMemorySampler, transitions
    from rlds_hub.inspection import split_statistics
    from rlds_hub.learners.bc.config import BCConfig
    from rlds_hub.learners.bc.learning import BCLearner
    from rlds_hub.learners.normalization import Normalizer
    from rlds_hub.learners.task import TaskSpec
    from rlds_hub.storage import open_dataset

    path = make_dataset(args.data)
    dataset = open_dataset(path)
    stats = split_statistics(dataset)
    task = TaskSpec.from_dataset(dataset, stats)
    normalizer = Normalizer.from_statistics(task, stats)
    config = BCConfig(batch_size=256, steps_per_call=100)
    device = jax.devices()[0]
    print(
        f"learner throughput ({harness.machine_line(('numpy', 'rlds_hub', 'jax'))}; "
        f"JAX on {device.device_kind})",
        flush=True,
    )

    feeds = {}
    loader = transitions(path, batch_size=256, num_epochs=None, seed=0)
    feeds["(a) loader from disk"] = BCLearner(task, config, normalizer, loader, seed=0)
    sampler = InMemorySampler.from_dataset(path)
    feeds["(b) in-memory sampler"] = BCLearner(task, config, normalizer, sampler, seed=0)
    synthetic = BCLearner(task, config, normalizer, sampler, seed=0)
    fixed = synthetic.feed.next(jax.random.PRNGKey(0))
    jax.block_until_ready(fixed)

    def synthetic_step():
        synthetic.state, metrics = synthetic._update_many(synthetic.state, fixed, synthetic.norm)
        return metrics

    one = BCLearner(
        task,
        config.replace(steps_per_call=1),
        normalizer,
        transitions(path, batch_size=256, num_epochs=None, seed=1),
        seed=0,
    )
    host = iter(transitions(path, batch_size=256, num_epochs=None, seed=2))
    from rlds_hub.learners import inputs

    def host_fed_step():
        batch = inputs.prepare_batch(next(host), task, ("observation", "action"))
        stacked = {k: jnp.asarray(v[None]) for k, v in batch.items()}
        one.state, metrics = one._update_many(one.state, stacked, one.norm)
        return metrics

    runs = {name: (lambda learner=learner: learner.step()) for name, learner in feeds.items()}
    runs["(c) synthetic, on device (ceiling)"] = synthetic_step
    runs["(d) NumPy batch per update, no scan"] = host_fed_step
    best: dict[str, tuple[float, float]] = {}
    load = harness.load_average()
    for _ in range(args.repeats):
        for name, step in runs.items():
            per_call = 1 if name.startswith("(d)") else 100
            wall, cpu = measure(step, args.seconds / (2 if per_call == 1 else 1), per_call)
            old = best.get(name, (0.0, 0.0))
            best[name] = (max(old[0], wall), max(old[1], cpu))
            print(f"  {name}: {wall:,.0f} updates/s, {cpu:,.0f} per CPU-second", flush=True)
    ceiling = best["(c) synthetic, on device (ceiling)"]
    print(
        f"\n(best of {args.repeats} rounds; load average {load} at the start, "
        f"{harness.load_average()} at the end, on {os.cpu_count()} CPUs)"
    )
    rows = [
        (name, f"{wall:,.0f}", f"{wall / ceiling[0]:.2f}", f"{cpu:,.0f}", f"{cpu / ceiling[1]:.2f}")
        for name, (wall, cpu) in best.items()
    ]
    header = ["feed", "updates/s", "/ (c)", "updates per CPU-second", "/ (c)"]
    print(harness.table(header, rows))
    for learner in feeds.values():
        learner.close()
    one.close()


if __name__ == "__main__":
    main()
