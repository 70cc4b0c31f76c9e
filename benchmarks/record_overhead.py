"""Per-step cost of recording, rlds_hub side by side with the peers, in one run.

Workload (the same as ../shared/peers/peer_record.py): 17-d float32 observations, 6-d float32
actions, 1000-step episodes, 100k steps; plus an image workload (84x84x3 uint8 observations)
and peak memory while recording one 10,000-step episode.

Every measurement runs in a fresh subprocess; the modes are interleaved over several rounds
so that machine noise hits them alike, and the median is reported.

    python benchmarks/record_overhead.py [--steps 100000] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

OBS, ACT, EPISODE = 17, 6, 1000
IMAGE_SHAPE = (84, 84, 3)


# ---------------------------------------------------------------------------------------
# Workloads (run inside the subprocess).


def _dm_env(image: bool, episode: int):
    import dm_env
    import numpy as np
    from dm_env import specs

    rng = np.random.default_rng(0)
    if image:
        # A rendered-looking frame: smooth gradients plus a moving square, so PNG has the
        # structure of real frames rather than incompressible noise.
        yy, xx = np.mgrid[0 : IMAGE_SHAPE[0], 0 : IMAGE_SHAPE[1]]
        base = np.stack([xx * 3, yy * 3, (xx + yy) * 2], axis=-1).astype(np.uint8)

        def observation(t: int):
            frame = base.copy()
            x = (t * 3) % (IMAGE_SHAPE[1] - 10)
            frame[30:40, x : x + 10] = (255, 40, 40)
            return frame

        obs_spec = specs.Array(IMAGE_SHAPE, np.uint8, "pixels")
    else:

        def observation(t: int):
            return rng.standard_normal(OBS).astype(np.float32)

        obs_spec = specs.Array((OBS,), np.float32, "obs")

    class Env(dm_env.Environment):
        def __init__(self):
            self.t = 0

        def reset(self):
            self.t = 0
            return dm_env.restart(observation(0))

        def step(self, action):
            self.t += 1
            o = observation(self.t)
            if self.t >= episode:
                return dm_env.truncation(1.0, o)
            return dm_env.transition(1.0, o)

        def observation_spec(self):
            return obs_spec

        def action_spec(self):
            return specs.BoundedArray((ACT,), np.float32, -1, 1, "action")

    return Env()


def _gym_env(image: bool, episode: int):
    import gymnasium as gym
    import numpy as np

    rng = np.random.default_rng(0)
    shape = IMAGE_SHAPE if image else (OBS,)

    class GEnv(gym.Env):
        observation_space = (
            gym.spaces.Box(0, 255, IMAGE_SHAPE, np.uint8)
            if image
            else gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
        )
        action_space = gym.spaces.Box(-1, 1, (ACT,), np.float32)

        def _obs(self):
            if image:
                return rng.integers(0, 255, shape, dtype=np.uint8)
            return rng.standard_normal(OBS).astype(np.float32)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return self._obs(), {}

        def step(self, action):
            self.t += 1
            return self._obs(), 1.0, False, self.t >= episode, {}

    return GEnv()


def _run_dm(env, steps: int) -> float:
    import numpy as np

    action = np.zeros(ACT, np.float32)
    start = time.perf_counter()
    n = 0
    while n < steps:
        timestep = env.reset()
        while not timestep.last() and n < steps:
            timestep = env.step(action)
            n += 1
    return time.perf_counter() - start


def _run_gym(env, steps: int) -> float:
    import numpy as np

    action = np.zeros(ACT, np.float32)
    start = time.perf_counter()
    n = 0
    while n < steps:
        env.reset(seed=0 if n == 0 else None)
        done = False
        while not done and n < steps:
            _, _, terminated, truncated, _ = env.step(action)
            n += 1
            done = terminated or truncated
    return time.perf_counter() - start


def measure(mode: str, steps: int, image: bool, episode: int) -> dict:
    """Runs one mode in this process; returns seconds, steps and the memory it added."""
    import numpy as np

    np.unicode_ = np.str_  # envlogger 1.2 on NumPy 2 (rlds_hub does this itself)
    workdir = tempfile.mkdtemp(prefix="rlds_bench_")
    close = None
    try:
        if mode in ("bare_gym", "minari"):
            os.environ["MINARI_DATASETS_PATH"] = workdir
            env = _gym_env(image, episode)
            if mode == "minari":
                import minari

                env = minari.DataCollector(env, record_infos=False)
            baseline = _rss_mb()
            seconds = _run_gym(env, steps)
            if mode == "minari":
                start = time.perf_counter()
                env.create_dataset(dataset_id="bench/peer-v0", algorithm_name="none")
                seconds += time.perf_counter() - start
        else:
            env = _dm_env(image, episode)
            if mode == "envlogger_null":
                import envlogger
                from envlogger.backends import backend_writer

                class Null(backend_writer.BackendWriter):
                    def _record_step(self, data, is_new_episode):
                        pass

                    def set_episode_metadata(self, data):
                        pass

                    def close(self):
                        pass

                env = envlogger.EnvLogger(env, backend=Null())
            elif mode == "envlogger_riegeli":
                import envlogger

                env = envlogger.EnvLogger(env, data_directory=workdir, max_episodes_per_file=100)
                close = env.close
            elif mode == "envlogger_tfds":
                import envlogger
                import tensorflow_datasets as tfds
                from envlogger.backends import tfds_backend_writer

                obs_feature = (
                    tfds.features.Image(shape=IMAGE_SHAPE, encoding_format="png")
                    if image
                    else tfds.features.Tensor(shape=(OBS,), dtype=np.float32)
                )
                config = tfds.rlds.rlds_base.DatasetConfig(
                    name="bench",
                    observation_info=obs_feature,
                    action_info=tfds.features.Tensor(shape=(ACT,), dtype=np.float32),
                    reward_info=np.float64,
                    discount_info=np.float64,
                )
                writer = tfds_backend_writer.TFDSBackendWriter(
                    data_directory=workdir, split_name="train", max_episodes_per_file=100,
                    ds_config=config,
                )
                env = envlogger.EnvLogger(env, backend=writer)
                close = env.close
            elif mode.startswith("rlds_hub"):
                from rlds_hub.recorders import Recorder

                env = Recorder(
                    env,
                    os.path.join(workdir, "ds"),
                    durability="os" if mode.endswith("_os") else "process",
                    image_encoding="raw" if mode.endswith("_raw") else "png",
                )
                close = env.close
            elif mode != "bare":
                raise ValueError(f"unknown mode {mode}")
            baseline = _rss_mb()
            seconds = _run_dm(env, steps)
            close_seconds = 0.0
            if close is not None:
                start = time.perf_counter()
                close()
                close_seconds = time.perf_counter() - start
                seconds += close_seconds
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result = {"seconds": seconds, "steps": steps, "added_mb": peak - baseline}
        if mode not in ("bare_gym", "minari") and close is not None:
            result["close_seconds"] = close_seconds
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ---------------------------------------------------------------------------------------
# Driver.


def _spawn(mode: str, steps: int, image: bool, episode: int) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, __file__, "--run", mode, "--steps", str(steps), "--episode", str(episode)]
        + (["--image"] if image else []),
        capture_output=True, text=True, env=env, check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1])


def _table(title: str, modes: list[str], steps: int, image: bool, rounds: int, reference: str,
           episode: int = EPISODE) -> list[str]:
    results: dict[str, list[dict]] = {m: [] for m in modes}
    for r in range(rounds):
        for mode in modes:
            results[mode].append(_spawn(mode, steps, image, episode))
            print(f"  round {r + 1}/{rounds} {mode}: {results[mode][-1]}", file=sys.stderr)
    us = {}
    for mode, runs in results.items():
        ok = [x for x in runs if "error" not in x]
        us[mode] = statistics.median(1e6 * x["seconds"] / x["steps"] for x in ok) if ok else None
    lines = [f"### {title}", "", "| recorder | us/step | over bare env | vs rlds_hub |",
             "| --- | --- | --- | --- |"]
    bare = us.get("bare_gym" if reference == "bare_gym" else "bare")
    ours = us.get("rlds_hub")
    for mode in modes:
        if us[mode] is None:
            lines.append(f"| {mode} | failed: {results[mode][0].get('error')} | | |")
            continue
        over = f"+{us[mode] - bare:.2f}" if bare and mode not in ("bare", "bare_gym") else ""
        ratio = f"{us[mode] / ours:.1f}x" if ours else ""
        lines.append(f"| {mode} | {us[mode]:.2f} | {over} | {ratio} |")
    return lines


def _memory_table(modes: list[str], image: bool, steps: int) -> list[str]:
    lines = [f"### Peak memory added while recording one {steps:,}-step episode "
             f"({'84x84x3 uint8' if image else '17-d float32'} observations)", "",
             "| recorder | MiB |", "| --- | --- |"]
    for mode in modes:
        result = _spawn(mode, steps, image, episode=steps)
        value = result.get("added_mb")
        lines.append(f"| {mode} | {value:.0f} |" if value is not None else
                     f"| {mode} | failed: {result.get('error')} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--image", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--episode", type=int, default=EPISODE, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--image-steps", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round, fewer steps")
    args = parser.parse_args()
    if args.run:
        print(json.dumps(measure(args.run, args.steps, args.image, args.episode)))
        return
    if args.quick:
        args.rounds, args.steps, args.image_steps = 1, 20_000, 2_000
    vector = ["bare", "envlogger_null", "rlds_hub", "rlds_hub_os", "envlogger_riegeli",
              "envlogger_tfds", "bare_gym", "minari"]
    image = ["bare", "rlds_hub", "rlds_hub_raw", "envlogger_riegeli", "envlogger_tfds",
             "bare_gym", "minari"]
    lines = [f"Recording benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()} "
             f"({os.cpu_count()} CPUs, {platform.python_version()})", ""]
    lines += _table(f"17-d float32 observations, 1000-step episodes, {args.steps:,} steps",
                    vector, args.steps, False, args.rounds, "bare")
    lines += ["", *_table(f"84x84x3 uint8 observations, 1000-step episodes, "
                          f"{args.image_steps:,} steps", image, args.image_steps, True,
                          args.rounds, "bare")]
    lines += ["", *_memory_table(["bare", "rlds_hub", "envlogger_riegeli", "envlogger_tfds",
                                  "minari"], False, 10_000)]
    lines += ["", *_memory_table(["bare", "rlds_hub", "rlds_hub_raw", "envlogger_tfds",
                                  "minari"], True, 10_000)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
