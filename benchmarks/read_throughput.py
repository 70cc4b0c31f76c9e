"""Read throughput: shuffled transition batches from disk, rlds_hub side by side with the peers.

Workload (the peer-measurement workload of the project, ``benchmarks.harness.StateEnv``): 200
episodes x 1000 steps, 17-d float32 observations, 6-d float32 actions, on local disk.
Measured, each in a fresh process (``harness.run_isolated``), rounds interleaved (this
machine is noisy; medians are reported):

- rlds_hub: ``rlds_hub.data.transitions`` — shuffled batches of 256 transitions as NumPy,
  on the dataset rlds_hub recorded and on the one envlogger's TFDS backend wrote, reading the
  shards' decoded columns from the column cache (``rlds_hub.data.columns``; built once before
  the rounds, in ``<root>/column_cache``); the same with the cache off (decoding every
  epoch), and with an empty cache (the first epoch, which builds it); with ``--before
  <tree>`` also an older checkout's loader (``harness.run_isolated(tree=...)``; with the
  column cache where that tree has one, else decoding);
- plain TFDS with the usual step-level RLDS transition pipeline (peer_read's), and with whole
  episodes batched then sliced;
- Minari's ``iterate_episodes`` (unshuffled, unbatched);
- the in-memory sampler on this machine's CPU (JAX): rlds_hub's ``InMemorySampler``
  (all five transition fields), and gpu_bc_limit.py's sampler (observations only);
- the ceiling: a NumPy shuffled gather (``np.take`` per field) of the same transitions
  already in memory, in batches of 256 — what a loader could at best do once the data is
  decoded. rlds_hub's one- and five-epoch rates are reported as fractions of it, per round;
  it is measured between them, so each ratio compares runs seconds apart.

Run from the repository root:

    python -m benchmarks.read_throughput [--rounds 3] [--episodes 200] [--modes rlds_hub ...]
        [--before <worktree of an older commit>] [--json out.json]

Only the copies of the workload the modes read are made (``--episodes 1000 --modes rlds_hub
ceiling rlds_hub_5epochs`` records rlds_hub's alone).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from benchmarks import harness
from benchmarks.harness import ACT, EPISODE_STEPS, OBS

SHARD_EPISODES = 20


def make_datasets(root: str, episodes: int, modes: Sequence[str] | None = None) -> None:
    """rlds_hub's, envlogger TFDS backend's and Minari's copies of the workload (kept), those
    that ``modes`` (default all) read."""
    import numpy as np

    modes = list(modes) if modes is not None else [mode for mode, _ in MODES]
    harness.record_dataset(
        os.path.join(root, "rlds_hub"), episodes, max_episodes_per_shard=SHARD_EPISODES
    )
    tfds_dir = os.path.join(root, "envlogger_tfds")
    envlogger_modes = {"rlds_hub_envlogger", "tfds_steps", "tfds_episodes"}
    if envlogger_modes & set(modes) and not os.path.exists(tfds_dir):
        import envlogger
        import tensorflow_datasets as tfds
        from envlogger.backends import tfds_backend_writer

        harness.allow_envlogger_writes()
        config = tfds.rlds.rlds_base.DatasetConfig(
            name="bench",
            observation_info=tfds.features.Tensor(shape=(OBS,), dtype=np.float32),
            action_info=tfds.features.Tensor(shape=(ACT,), dtype=np.float32),
            reward_info=np.float64,
            discount_info=np.float64,
        )
        partial = tfds_dir + ".partial"
        os.makedirs(partial, exist_ok=True)
        writer = tfds_backend_writer.TFDSBackendWriter(
            data_directory=partial,
            split_name="train",
            max_episodes_per_file=SHARD_EPISODES,
            ds_config=config,
        )
        env = envlogger.EnvLogger(harness.StateEnv(), backend=writer)
        harness.drive(env, episodes)
        env.close()
        del env, writer  # the writer's __del__ closes it again: before it is moved
        os.replace(partial, tfds_dir)
    minari_dir = os.path.join(root, "minari")
    if "minari" in modes and not os.path.exists(minari_dir):
        os.environ["MINARI_DATASETS_PATH"] = minari_dir
        import minari

        env = minari.DataCollector(harness.gym_state_env(), record_infos=False)
        for i in range(episodes):
            env.reset(seed=i)
            done = False
            while not done:
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                done = terminated or truncated
        env.create_dataset(dataset_id="bench/peer-v0", algorithm_name="random")


# ---- the measured programs (each called in its own process) ------------------------------


def measure(mode: str, root: str) -> dict[str, Any]:
    """One measurement of ``mode`` (see MODES): items and seconds, and what else it reports."""
    if mode not in dict(MODES):
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(dict(MODES))}")
    if mode.startswith("rlds_hub"):
        return _rlds_hub(mode, root)
    if mode == "ceiling":
        return _ceiling(root)
    if mode.startswith("tfds"):
        return _tfds(mode, root)
    if mode == "minari":
        return _minari(root)
    return _sampler(mode)


def _rlds_hub(mode: str, root: str) -> dict[str, Any]:
    cache = os.path.join(root, "column_cache")
    if mode.endswith("nocache"):
        cache = "off"
    elif mode.endswith("cold"):
        cache = tempfile.mkdtemp(prefix="rlds_cold_cache_")
    os.environ["RLDS_HUB_COLUMN_CACHE"] = cache  # read when a loader is made
    import rlds_hub.data as data

    path = os.path.join(root, "envlogger_tfds" if mode.endswith("envlogger") else "rlds_hub")
    epochs = 5 if "5epochs" in mode else 1
    harness.reset_peak_rss()
    baseline = harness.status_mib("VmRSS")
    start = time.perf_counter()
    loader = data.transitions(path, batch_size=256, seed=0, num_epochs=epochs)
    if hasattr(loader, "chunks"):  # builds what is built up front (untimed, as TFDS's setup)
        loader.chunks()
    built = time.perf_counter()
    n = sum(len(b["reward"]) for b in loader)
    seconds = time.perf_counter() - built
    if mode.endswith("cold"):
        shutil.rmtree(cache, ignore_errors=True)
    return {
        "items": n,
        "seconds": seconds,
        "setup_seconds": built - start,
        "added_mb": harness.status_mib("VmHWM") - baseline,
    }


def _ceiling(root: str) -> dict[str, Any]:
    import numpy as np

    import rlds_hub.data as data

    path = os.path.join(root, "rlds_hub")
    batches = list(data.transitions(path, batch_size=1 << 20, shuffle=False))
    arrays = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    count = len(arrays["reward"])
    start = time.perf_counter()
    order = np.random.default_rng(0).permutation(count)
    n = 0
    for first in range(0, count, 256):
        index = order[first : first + 256]
        batch = {k: np.take(v, index, axis=0) for k, v in arrays.items()}
        n += len(batch["reward"])
    return {"items": n, "seconds": time.perf_counter() - start}


def _tfds(mode: str, root: str) -> dict[str, Any]:
    import tensorflow as tf
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(os.path.join(root, "envlogger_tfds"))
    ds = builder.as_dataset(split="train", read_config=tfds.ReadConfig(interleave_cycle_length=4))
    start = time.perf_counter()
    if mode == "tfds_steps":  # peer_read.py's RLDS-style step-level transition pipeline

        def to_transitions(steps: Any) -> Any:
            pairs = tf.data.Dataset.zip((steps, steps.skip(1)))
            return pairs.filter(lambda s, n: tf.logical_not(s["is_last"])).map(
                lambda s, n: dict(
                    obs=s["observation"],
                    act=s["action"],
                    rew=s["reward"],
                    disc=s["discount"],
                    next_obs=n["observation"],
                )
            )

        batches = ds.flat_map(lambda e: to_transitions(e["steps"])).batch(256)
    else:  # whole episodes batched, then sliced into transitions

        def episode(e: Any) -> dict[str, Any]:
            s = e["steps"].batch(100_000).get_single_element()
            return dict(
                obs=s["observation"][:-1],
                act=s["action"][:-1],
                rew=s["reward"][:-1],
                disc=s["discount"][:-1],
                next_obs=s["observation"][1:],
            )

        batches = ds.map(episode, num_parallel_calls=tf.data.AUTOTUNE).unbatch().batch(256)
    n = sum(len(b["obs"]) for b in tfds.as_numpy(batches.prefetch(tf.data.AUTOTUNE)))
    return {"items": n, "seconds": time.perf_counter() - start}


def _minari(root: str) -> dict[str, Any]:
    os.environ["MINARI_DATASETS_PATH"] = os.path.join(root, "minari")
    import minari

    dataset = minari.load_dataset("bench/peer-v0")
    start = time.perf_counter()
    n = 0
    for ep in dataset.iterate_episodes():
        o = ep.observations
        _ = dict(obs=o[:-1], act=ep.actions, rew=ep.rewards, next_obs=o[1:])
        n += len(ep.actions)
    return {"items": n, "seconds": time.perf_counter() - start}


def _sampler(mode: str) -> dict[str, Any]:
    import jax
    import numpy as np

    n, batch, per_call, calls = 200_000, 256, 1000, 20
    rng = np.random.default_rng(0)
    arrays = {
        "observation": rng.standard_normal((n, OBS)).astype(np.float32),
        "next_observation": rng.standard_normal((n, OBS)).astype(np.float32),
        "action": rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
        "reward": np.ones(n),
        "discount": np.ones(n),
    }
    key = jax.random.PRNGKey(0)
    if mode == "sampler_rlds_hub":
        from rlds_hub.data.sampler import InMemorySampler

        sampler = InMemorySampler.from_arrays(arrays)

        def draw(k: Any) -> Any:
            return sampler.sample_many(k, per_call, batch)

    else:  # gpu_bc_limit.py's: observations only, summed inside a scan
        obs = jax.device_put(arrays["observation"])

        def body(k: Any, _: Any) -> tuple[Any, Any]:
            k, sub = jax.random.split(k)
            idx = jax.random.randint(sub, (batch,), 0, n)
            return k, obs[idx].sum()

        scan = jax.jit(lambda k: jax.lax.scan(body, k, None, length=per_call))

        def draw(k: Any) -> Any:
            return scan(k)[1]

    jax.block_until_ready(draw(key))
    start = time.perf_counter()
    for i in range(calls):
        out = draw(jax.random.fold_in(key, i))
    jax.block_until_ready(out)
    return {
        "items": calls * per_call * batch,
        "seconds": time.perf_counter() - start,
        "device": str(jax.devices()[0]),
    }


MODES = [
    ("rlds_hub", "rlds_hub `transitions()`, shuffled batches of 256, 1 epoch"),
    ("rlds_hub_5epochs", "rlds_hub `transitions()`, shuffled batches of 256, 5 epochs"),
    ("rlds_hub_nocache", "rlds_hub `transitions()`, 1 epoch, column cache off (decoding)"),
    ("rlds_hub_cold", "rlds_hub `transitions()`, 1 epoch, empty column cache (builds it)"),
    ("rlds_hub_before", "rlds_hub `transitions()`, 1 epoch, the `--before` tree"),
    ("rlds_hub_envlogger", "rlds_hub `transitions()` on envlogger's TFDS dataset, 1 epoch"),
    ("tfds_steps", "plain TFDS, step-level RLDS transition pipeline (peer_read's)"),
    ("tfds_episodes", "plain TFDS, whole episodes batched then sliced"),
    ("minari", "Minari `iterate_episodes` (unshuffled, unbatched)"),
    ("sampler_rlds_hub", "in-memory sampler, rlds_hub `InMemorySampler` (5 fields), CPU"),
    ("sampler_peer", "in-memory sampler, `gpu_bc_limit.py`'s (observations only, summed), CPU"),
    ("ceiling", "**ceiling**: NumPy shuffled gather of the transitions in memory, batches of 256"),
]


# The order of measurement in a round: the ceiling amid the rlds_hub runs it divides.
FIRST = ["rlds_hub", "ceiling", "rlds_hub_before", "rlds_hub_nocache", "rlds_hub_5epochs"]
RUN_ORDER = [*FIRST, *(mode for mode, _ in MODES if mode not in FIRST)]


def _before_mode(tree: str) -> str:
    """How an older checkout reads: with the column cache where it has one (the same entries),
    else decoding."""
    has_cache = os.path.exists(os.path.join(tree, "rlds_hub", "data", "columns.py"))
    return "rlds_hub" if has_cache else "rlds_hub_nocache"


# ---- the report ------------------------------------------------------------------------------


def report(results: dict[str, list[dict]], rounds: int, episodes: int) -> str:
    """The Markdown table: medians, ranges, ratios to plain TFDS and to the ceiling."""
    rates = {
        mode: sorted(x["items"] / x["seconds"] for x in runs if "error" not in x)
        for mode, runs in results.items()
    }
    base = statistics.median(rates["tfds_steps"]) if rates.get("tfds_steps") else None
    fractions = {  # rlds_hub / ceiling within each round
        mode: [
            a["items"] / a["seconds"] / (c["items"] / c["seconds"])
            for a, c in zip(results[mode], results["ceiling"], strict=True)
            if "error" not in a and "error" not in c
        ]
        for mode in results
        if "ceiling" in results and mode.startswith(("rlds_hub", "ceiling"))
    }
    rows = []
    for mode, title in MODES:
        if mode not in results:
            continue
        if not rates[mode]:
            rows.append((title, f"failed: {results[mode][0].get('error')}", "", "", "", ""))
            continue
        median, low, high = harness.spread(rates[mode])
        memory = [x["added_mb"] for x in results[mode] if "added_mb" in x]
        ratio = fractions.get(mode)
        rows.append(
            (
                title,
                harness.si(median),
                f"{harness.si(low)} - {harness.si(high)}",
                f"{median / base:.0f}x" if base else "",
                f"{statistics.median(ratio):.2f} ({', '.join(f'{f:.2f}' for f in ratio)})"
                if ratio
                else "",
                f"{max(memory):.0f} MiB" if memory else "",
            )
        )
    header = [
        "what",
        "transitions/s (median)",
        "min - max",
        "x plain TFDS steps",
        "/ ceiling (rounds)",
        "memory added",
    ]
    return (
        f"{episodes} episodes x {EPISODE_STEPS} steps, median of {rounds} interleaved rounds\n\n"
        + harness.table(header, rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--root", default=None, help="where the datasets are (made if absent)")
    parser.add_argument(
        "--modes",
        nargs="*",
        default=[m for m, _ in MODES if m != "rlds_hub_before"],
        choices=[m for m, _ in MODES],
    )
    parser.add_argument("--before", default=None, help="an older checkout (git worktree)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if args.before and "rlds_hub_before" not in args.modes:
        args.modes.append("rlds_hub_before")
    if "rlds_hub_before" in args.modes and not args.before:
        parser.error("mode rlds_hub_before needs --before <tree>")
    root = args.root or os.path.join(tempfile.gettempdir(), f"rlds_read_bench_{args.episodes}")
    print(harness.machine_line(("numpy", "rlds_hub", "tensorflow", "jax", "minari")), flush=True)
    make_datasets(root, args.episodes, args.modes)
    shutil.rmtree(os.path.join(root, "column_cache"), ignore_errors=True)
    built = harness.run_isolated(
        "benchmarks.read_throughput:measure", {"mode": "rlds_hub", "root": root}
    )
    print(f"column cache built (first epoch): {built}", file=sys.stderr, flush=True)
    results: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    for r in range(args.rounds):
        for mode in sorted(args.modes, key=RUN_ORDER.index):
            tree = args.before if mode == "rlds_hub_before" else None
            config = {"mode": _before_mode(tree) if tree else mode, "root": root}
            results[mode].append(
                harness.run_isolated("benchmarks.read_throughput:measure", config, tree=tree)
            )
            print(f"round {r + 1} {mode}: {results[mode][-1]}", file=sys.stderr, flush=True)
    print(report(results, args.rounds, args.episodes))
    print(f"load average at the end: {harness.load_average()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": harness.machine(), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
