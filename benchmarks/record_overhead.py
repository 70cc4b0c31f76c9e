"""Per-step cost of recording, rlds_hub side by side with the peers, in one run.

Workload (the peer-measurement workload of the project, ``benchmarks.harness.StateEnv``): 17-d
float32 observations, 6-d float32 actions, 1000-step episodes, 100k steps per recorder; plus an
image workload (84x84x3 uint8 observations) and the peak memory added while recording one
10,000-step episode.

This machine is shared and noisy (identical runs differ by up to 50%), so each recorder runs
*interleaved* with the bare environment in one process: each round records one episode with
each in turn, and slow phases of the machine hit both alike; the figure that compares is a
recorder's cost *over the bare env of its own group*. Recorders are grouped (ours with the
envlogger wrapper alone; each peer family apart) because in one process they would disturb
each other (page cache, background threads) in a way no real recording does: each group runs
in a fresh process (``harness.run_isolated``). Time includes closing each recorder (flushing,
sealing, fsync). Memory is measured in a fresh process per recorder.

Run from the repository root:

    python -m benchmarks.record_overhead [--steps 100000] [--image-steps 10000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from benchmarks import harness
from benchmarks.harness import ACT, EPISODE_STEPS


class Runner:
    """One recorder under test: runs whole episodes and closes."""

    def __init__(self, env: Any, kind: str, close: Callable[[], None] | None = None):
        import numpy as np

        self.env, self.kind, self._close = env, kind, close
        self.action = np.zeros(ACT, np.float32)
        self.seconds = 0.0
        self.steps = 0
        self.per_episode: list[float] = []
        self._seeded = False

    def episode(self) -> None:
        env, action, n = self.env, self.action, 0
        start = time.perf_counter()
        if self.kind == "dm":
            timestep = env.reset()
            while not timestep.last():
                timestep = env.step(action)
                n += 1
        else:
            env.reset(seed=None if self._seeded else 0)
            self._seeded = True
            done = False
            while not done:
                _, _, terminated, truncated, _ = env.step(action)
                n += 1
                done = terminated or truncated
        elapsed = time.perf_counter() - start
        self.seconds += elapsed
        self.steps += n
        self.per_episode.append(elapsed / n)

    def close(self) -> None:
        if self._close is not None:
            start = time.perf_counter()
            self._close()
            self.seconds += time.perf_counter() - start


def make(mode: str, image: bool, episode: int, workdir: str) -> Runner:
    """The recorder called ``mode`` around a fresh environment, writing under ``workdir``."""
    import numpy as np

    harness.allow_envlogger_writes()
    path = os.path.join(workdir, mode)
    if mode in ("bare_gym", "minari"):
        env = harness.gym_state_env(episode_steps=episode, image=image)
        if mode == "bare_gym":
            return Runner(env, "gym")
        import minari

        os.environ["MINARI_DATASETS_PATH"] = path
        collector = minari.DataCollector(env, record_infos=False)
        return Runner(
            collector,
            "gym",
            lambda: collector.create_dataset(dataset_id="bench/peer-v0", algorithm_name="none"),
        )
    env = harness.StateEnv(episode_steps=episode, image=image)
    if mode == "bare":
        return Runner(env, "dm")
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

        return Runner(envlogger.EnvLogger(env, backend=Null()), "dm")
    if mode == "envlogger_riegeli":
        import envlogger

        os.makedirs(path)
        logger = envlogger.EnvLogger(env, data_directory=path, max_episodes_per_file=100)
        return Runner(logger, "dm", logger.close)
    if mode == "envlogger_tfds":
        import envlogger
        import tensorflow_datasets as tfds
        from envlogger.backends import tfds_backend_writer

        obs_feature = (
            tfds.features.Image(shape=harness.IMAGE_SHAPE, encoding_format="png")
            if image
            else tfds.features.Tensor(shape=(harness.OBS,), dtype=np.float32)
        )
        config = tfds.rlds.rlds_base.DatasetConfig(
            name="bench",
            observation_info=obs_feature,
            action_info=tfds.features.Tensor(shape=(ACT,), dtype=np.float32),
            reward_info=np.float64,
            discount_info=np.float64,
        )
        os.makedirs(path)
        writer = tfds_backend_writer.TFDSBackendWriter(
            data_directory=path,
            split_name="train",
            max_episodes_per_file=100,
            ds_config=config,
        )
        logger = envlogger.EnvLogger(env, backend=writer)
        return Runner(logger, "dm", logger.close)
    if mode.startswith("rlds_hub"):
        from rlds_hub.recorders import Recorder

        recorder = Recorder(
            env,
            path,
            durability="os" if mode.endswith("_os") else "process",
            image_encoding="raw" if mode.endswith("_raw") else "png",
        )
        return Runner(recorder, "dm", recorder.close)
    raise ValueError(f"unknown mode {mode}")


# ---------------------------------------------------------------------------------------
# Measurements.


def interleaved(
    modes: list[str], steps: int, image: bool, episode: int = EPISODE_STEPS
) -> dict[str, dict[str, float]]:
    """Records ``steps`` steps with every mode, one episode each in turn; us/step per mode."""
    workdir = tempfile.mkdtemp(prefix="rlds_bench_")
    try:
        runners = {mode: make(mode, image, episode, workdir) for mode in modes}
        for runner in runners.values():  # warm-up episode, not counted
            runner.episode()
            runner.seconds, runner.steps, runner.per_episode = 0.0, 0, []
        rounds = max(1, steps // episode)
        for r in range(rounds):
            for runner in runners.values():
                runner.episode()
            if (r + 1) % max(1, rounds // 5) == 0:
                print(f"  round {r + 1}/{rounds}", file=sys.stderr, flush=True)
        for runner in runners.values():
            runner.close()
        return {
            mode: {
                "us_per_step": 1e6 * r.seconds / r.steps,
                "median_episode_us_per_step": 1e6 * statistics.median(r.per_episode),
            }
            for mode, r in runners.items()
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def memory(mode: str, image: bool, steps: int) -> dict[str, float]:
    """Peak memory (MiB) added by recording one ``steps``-step episode (in this process):
    the peak resident size while recording and closing, minus the resident size before."""
    workdir = tempfile.mkdtemp(prefix="rlds_bench_")
    try:
        runner = make(mode, image, steps, workdir)
        harness.reset_peak_rss()
        baseline = harness.status_mib("VmRSS")
        runner.episode()
        runner.close()
        return {"added_mb": harness.status_mib("VmHWM") - baseline}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


GROUPS = {
    "vector": [
        ["bare", "envlogger_null", "rlds_hub"],
        ["bare", "rlds_hub_os"],
        ["bare", "envlogger_riegeli", "envlogger_tfds"],
        ["bare_gym", "minari"],
    ],
    "image": [
        ["bare", "rlds_hub"],
        ["bare", "rlds_hub_raw"],
        ["bare", "envlogger_riegeli", "envlogger_tfds"],
        ["bare_gym", "minari"],
    ],
}


def over_bare(group: list[str], measured: dict[str, dict[str, float]]) -> dict[str, dict]:
    """Each recorder's cost over its group's bare env (the group's first mode)."""
    bare = measured[group[0]]
    results = {}
    for mode in group[1:]:
        r = dict(measured[mode])
        r["over_bare"] = r["us_per_step"] - bare["us_per_step"]
        r["median_over_bare"] = r["median_episode_us_per_step"] - bare["median_episode_us_per_step"]
        r["bare_us_per_step"] = bare["us_per_step"]
        results[mode] = r
    return results


def grouped(groups: list[list[str]], steps: int, image: bool) -> dict[str, dict]:
    """Runs each group interleaved in a fresh process; a recorder's overhead is over its
    group's bare env."""
    results = {}
    for group in groups:
        measured = harness.run_isolated(
            "benchmarks.record_overhead:interleaved",
            {"modes": group, "steps": steps, "image": image},
        )
        if "error" in measured:
            raise RuntimeError(f"group {group}: {measured['error']}")
        results.update(over_bare(group, measured))
    return results


def _speed_table(title: str, results: dict, ours: str = "rlds_hub") -> list[str]:
    rows = [
        (
            mode,
            f"{r['us_per_step']:.2f}",
            f"{r['bare_us_per_step']:.2f}",
            f"+{r['over_bare']:.2f}",
            f"+{r['median_over_bare']:.2f}",
            f"{r['over_bare'] / results[ours]['over_bare']:.1f}",
        )
        for mode, r in results.items()
    ]
    header = [
        "recorder",
        "us/step",
        "its bare env",
        "over bare",
        "median episode over bare",
        "overhead x rlds_hub",
    ]
    return [f"### {title}", "", harness.table(header, rows)]


def _memory_cell(mode: str, image: bool, steps: int) -> str:
    result = harness.run_isolated(
        "benchmarks.record_overhead:memory", {"mode": mode, "image": image, "steps": steps}
    )
    return f"failed: {result['error']}" if "error" in result else f"{result['added_mb']:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--image-steps", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.image_steps = 10_000, 2_000
    lines = [
        "Recording benchmark, "
        + harness.machine_line(("numpy", "rlds_hub", "envlogger", "minari", "tensorflow")),
        "",
    ]
    lines += _speed_table(
        f"17-d float32 observations, 1000-step episodes, {args.steps:,} steps per recorder",
        grouped(GROUPS["vector"], args.steps, image=False),
    )
    lines += [
        "",
        *_speed_table(
            f"84x84x3 uint8 observations, 1000-step episodes, {args.image_steps:,} steps",
            grouped(GROUPS["image"], args.image_steps, image=True),
        ),
    ]
    for image_workload, modes in (
        (False, ["bare", "rlds_hub", "envlogger_riegeli", "envlogger_tfds", "minari"]),
        (
            True,
            ["bare", "rlds_hub", "rlds_hub_raw", "envlogger_riegeli", "envlogger_tfds", "minari"],
        ),
    ):
        what = "84x84x3 uint8" if image_workload else "17-d float32"
        rows = [(mode, _memory_cell(mode, image_workload, 10_000)) for mode in modes]
        lines += [
            "",
            f"### Peak memory added recording one 10,000-step episode ({what})",
            "",
            harness.table(["recorder", "MiB"], rows),
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
