"""Read throughput: shuffled transition batches from disk, rlds_hub side by side with the peers.

Workload (the peer-measurement workload of the project): 200 episodes x 1000 steps, 17-d float32
observations, 6-d float32 actions, on local disk. Measured, each in a fresh process, rounds
interleaved (this machine is noisy; medians are reported):

- rlds_hub: ``rlds_hub.data.transitions`` — shuffled batches of 256 transitions as NumPy,
  on the dataset rlds_hub recorded and on the one envlogger's TFDS backend wrote;
- plain TFDS with the usual step-level RLDS transition pipeline (peer_read's), and with whole
  episodes batched then sliced;
- Minari's ``iterate_episodes`` (unshuffled, unbatched);
- the in-memory sampler on this machine's CPU (JAX): rlds_hub's ``InMemorySampler``
  (all five transition fields), and gpu_bc_limit.py's sampler (observations only);
- the ceiling: a NumPy shuffled gather (``np.take`` per field) of the same transitions
  already in memory, in batches of 256 — what a loader could at best do once the data is
  decoded. rlds_hub's one-epoch rate is reported as a fraction of it, per round.

    python benchmarks/read_throughput.py [--rounds 3] [--episodes 200]
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

OBS, ACT, EP = 17, 6, 1000


def _env(rng):
    import dm_env
    import numpy as np
    from dm_env import specs

    class Env(dm_env.Environment):
        def reset(self):
            self.t = 0
            return dm_env.restart(rng.standard_normal(OBS).astype(np.float32))

        def step(self, action):
            self.t += 1
            o = rng.standard_normal(OBS).astype(np.float32)
            return dm_env.truncation(1.0, o) if self.t >= EP else dm_env.transition(1.0, o)

        def observation_spec(self):
            return specs.Array((OBS,), np.float32, "obs")

        def action_spec(self):
            return specs.BoundedArray((ACT,), np.float32, -1, 1, "action")

    return Env()


def make_datasets(root: str, episodes: int) -> None:
    """rlds_hub's, envlogger TFDS backend's and Minari's copies of the workload."""
    import numpy as np

    np.unicode_ = np.str_
    rng = np.random.default_rng(0)
    if not os.path.exists(os.path.join(root, "rlds_hub", "dataset_info.json")):
        from rlds_hub.recorders import Recorder

        with Recorder(_env(rng), os.path.join(root, "rlds_hub"), max_episodes_per_shard=20) as r:
            for _ in range(episodes):
                ts = r.reset()
                while not ts.last():
                    ts = r.step(rng.uniform(-1, 1, ACT).astype(np.float32))
    tfds_dir = os.path.join(root, "envlogger_tfds")
    if not os.path.exists(tfds_dir):
        import envlogger
        import tensorflow_datasets as tfds
        from envlogger.backends import tfds_backend_writer

        config = tfds.rlds.rlds_base.DatasetConfig(
            name="bench",
            observation_info=tfds.features.Tensor(shape=(OBS,), dtype=np.float32),
            action_info=tfds.features.Tensor(shape=(ACT,), dtype=np.float32),
            reward_info=np.float64,
            discount_info=np.float64,
        )
        os.makedirs(tfds_dir)
        writer = tfds_backend_writer.TFDSBackendWriter(
            data_directory=tfds_dir,
            split_name="train",
            max_episodes_per_file=20,
            ds_config=config,
        )
        env = envlogger.EnvLogger(_env(rng), backend=writer)
        for _ in range(episodes):
            ts = env.reset()
            while not ts.last():
                ts = env.step(rng.uniform(-1, 1, ACT).astype(np.float32))
        env.close()
    minari_dir = os.path.join(root, "minari")
    if not os.path.exists(minari_dir):
        os.environ["MINARI_DATASETS_PATH"] = minari_dir
        import gymnasium as gym
        import minari

        class GEnv(gym.Env):
            observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
            action_space = gym.spaces.Box(-1, 1, (ACT,), np.float32)

            def reset(self, seed=None, options=None):
                super().reset(seed=seed)
                self.t = 0
                return rng.standard_normal(OBS).astype(np.float32), {}

            def step(self, action):
                self.t += 1
                return rng.standard_normal(OBS).astype(np.float32), 1.0, False, self.t >= EP, {}

        env = minari.DataCollector(GEnv(), record_infos=False)
        for i in range(episodes):
            env.reset(seed=i)
            done = False
            while not done:
                _, _, te, tr, _ = env.step(env.action_space.sample())
                done = te or tr
        env.create_dataset(dataset_id="bench/peer-v0", algorithm_name="random")


# ---------------------------------------------------------------------------------------
# Measurements (each in its own process).


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(mode: str, root: str) -> dict:
    if mode.startswith("rlds_hub"):
        import rlds_hub.data as data

        path = os.path.join(root, "envlogger_tfds" if mode.endswith("envlogger") else "rlds_hub")
        epochs = 5 if "5epochs" in mode else 1
        _reset_peak()
        baseline = _status_mb("VmRSS")
        start = time.perf_counter()
        loader = data.transitions(path, batch_size=256, seed=0, num_epochs=epochs)
        loader.chunks()  # builds the tf.data pipeline (as TFDS's as_dataset does, untimed)
        built = time.perf_counter()
        n = sum(len(b["reward"]) for b in loader)
        seconds = time.perf_counter() - built
        return {
            "items": n,
            "seconds": seconds,
            "setup_seconds": built - start,
            "added_mb": _status_mb("VmHWM") - baseline,
        }
    if mode == "ceiling":
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
    if mode.startswith("tfds"):
        import tensorflow as tf
        import tensorflow_datasets as tfds

        builder = tfds.builder_from_directory(os.path.join(root, "envlogger_tfds"))
        ds = builder.as_dataset(
            split="train", read_config=tfds.ReadConfig(interleave_cycle_length=4)
        )
        start = time.perf_counter()
        if mode == "tfds_steps":  # peer_read.py's RLDS-style step-level transition pipeline

            def to_transitions(steps):
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

            def episode(e):
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
    if mode == "minari":
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
    if mode.startswith("sampler"):
        import jax
        import jax.numpy as jnp
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
            draw = lambda k: sampler.sample_many(k, per_call, batch)  # noqa: E731
        else:  # gpu_bc_limit.py's: observations only, summed inside a scan
            obs = jax.device_put(arrays["observation"])

            def body(k, _):
                k, sub = jax.random.split(k)
                idx = jax.random.randint(sub, (batch,), 0, n)
                return k, obs[idx].sum()

            scan = jax.jit(lambda k: jax.lax.scan(body, k, None, length=per_call))
            draw = lambda k: scan(k)[1]  # noqa: E731
        jax.block_until_ready(draw(key))
        start = time.perf_counter()
        for i in range(calls):
            out = draw(jax.random.fold_in(key, i))
        jax.block_until_ready(out)
        del jnp
        return {
            "items": calls * per_call * batch,
            "seconds": time.perf_counter() - start,
            "device": str(jax.devices()[0]),
        }
    raise ValueError(mode)


def _spawn(mode: str, root: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--run", mode, "--root", root],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1])


MODES = [
    ("rlds_hub", "rlds_hub transitions, shuffled batches of 256 (1 epoch)"),
    ("rlds_hub_5epochs", "rlds_hub transitions, shuffled batches of 256 (5 epochs)"),
    ("rlds_hub_envlogger", "rlds_hub transitions on envlogger's TFDS dataset (1 epoch)"),
    ("tfds_steps", "plain TFDS, step-level RLDS transition pipeline, batches of 256"),
    ("tfds_episodes", "plain TFDS, whole episodes batched then sliced, batches of 256"),
    ("minari", "Minari iterate_episodes (unshuffled, unbatched)"),
    ("sampler_rlds_hub", "in-memory sampler, rlds_hub (5 fields, 1000 batches/call)"),
    ("sampler_peer", "in-memory sampler, gpu_bc_limit.py's (observations only)"),
    ("ceiling", "ceiling: NumPy shuffled gather of the transitions in memory, batches of 256"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--root", default=None, help="where the datasets are (made if absent)")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(measure(args.run, args.root)))
        return
    root = args.root or os.path.join(tempfile.gettempdir(), f"rlds_read_bench_{args.episodes}")
    make_datasets(root, args.episodes)
    results: dict[str, list[dict]] = {mode: [] for mode, _ in MODES}
    for r in range(args.rounds):
        for mode, _ in MODES:
            results[mode].append(_spawn(mode, root))
            print(f"round {r + 1} {mode}: {results[mode][-1]}", file=sys.stderr, flush=True)
    lines = [
        f"Read benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}), "
        f"{args.episodes} episodes x {EP} steps, median of {args.rounds} runs",
        "",
        "| what | transitions/s (median) | min - max | x plain TFDS steps | memory added |",
        "| --- | --- | --- | --- | --- |",
    ]
    rates = {}
    for mode, _ in MODES:
        ok = [x for x in results[mode] if "error" not in x]
        rates[mode] = sorted(x["items"] / x["seconds"] for x in ok)
    base = statistics.median(rates["tfds_steps"]) if rates["tfds_steps"] else None
    for mode, title in MODES:
        if not rates[mode]:
            lines.append(f"| {title} | failed: {results[mode][0].get('error')} | | | |")
            continue
        median = statistics.median(rates[mode])
        memory = [x.get("added_mb") for x in results[mode] if "added_mb" in x]
        mem = f"{max(memory):.0f} MiB" if memory else ""
        setup = [x["setup_seconds"] for x in results[mode] if "setup_seconds" in x]
        if setup:
            title += f" (+{statistics.median(setup):.1f} s to build the pipeline)"
        ratio = f"{median / base:.0f}x" if base else ""
        lines.append(
            f"| {title} | {_rate(median)} | {_rate(rates[mode][0])} - "
            f"{_rate(rates[mode][-1])} | {ratio} | {mem} |"
        )
    fractions = [
        a["items"] / a["seconds"] / (c["items"] / c["seconds"])
        for a, c in zip(results["rlds_hub"], results["ceiling"], strict=True)
        if "error" not in a and "error" not in c
    ]
    if fractions:
        lines += [
            "",
            "rlds_hub one epoch / ceiling, per round (same round, interleaved): "
            + ", ".join(f"{f:.2f}" for f in fractions)
            + f"; median {statistics.median(fractions):.2f}",
        ]
    print("\n".join(lines))


def _rate(value: float) -> str:
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.0f}k"


if __name__ == "__main__":
    main()
