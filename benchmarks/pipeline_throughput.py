"""Converting envlogger Riegeli logs to RLDS: rlds_hub's Beam convert job against TFDS's
own path, side by side in one run.

Workload (the peer's, ``benchmarks.harness.StateEnv``): 200 episodes x 1000 steps, 17-d float32
observations, 6-d float32 actions in [-1, 1], float64 rewards and discounts, written by
envlogger 1.2's own Riegeli backend into 4 log directories (50 episodes each, 25 episodes per
file).

Rows (each in its own process, ``harness.run_isolated``; steps/s over the whole job, start-up
included; peak memory is the largest total RSS of the job's process tree, sampled every
0.1 s):

- ceilings: envlogger's reader decoding every step, one process, nothing written (no
  converter built on envlogger's public reader can be faster per process), and the same
  for rlds_hub's step decoder (``rlds_hub.beam.sources.envlogger_codec``), the bound of
  rlds_hub's convert per worker;
- TFDS's own path: a GeneratorBasedBuilder calling ``rlds_base.generate_examples`` (the
  ``tfds.rlds`` envlogger reader), and the same through Beam (1 and 2 workers);
- rlds_hub convert on the DirectRunner (1 and 2 worker processes) and on the DaskRunner
  (LocalCluster, 2 worker processes).

``--scale 10`` adds rlds_hub's 1- and 2-worker rows on a dataset 10x larger (2000 episodes),
to show that memory does not grow with the dataset.

Run from the repository root:

    python -m benchmarks.pipeline_throughput [--scale 10] [--skip-tfds-beam] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.harness import ACT, EPISODE_STEPS, OBS

LOG_DIRS = 4
EPISODES_PER_FILE = 25
BASE_EPISODES = 200


def make_logs(root: str, episodes: int) -> None:
    """Writes the workload with envlogger's own Riegeli backend (once per size)."""
    if os.path.exists(os.path.join(root, ".done")):
        return
    shutil.rmtree(root, ignore_errors=True)
    import envlogger

    harness.allow_envlogger_writes()
    for part in range(LOG_DIRS):
        directory = os.path.join(root, f"part{part}")
        os.makedirs(directory)
        with envlogger.EnvLogger(
            harness.StateEnv(seed=part),
            data_directory=directory,
            max_episodes_per_file=EPISODES_PER_FILE,
        ) as env:
            harness.drive(env, episodes // LOG_DIRS, seed=part)
    open(os.path.join(root, ".done"), "w").close()


# ---- the measured programs (each runs in its own process) -------------------------------


def run_ceiling(logs: str, out: str) -> int:
    import envlogger

    from rlds_hub.beam.sources.envlogger_source import find_log_dirs

    steps = 0
    for directory in find_log_dirs(logs):
        with envlogger.Reader(directory) as reader:
            for episode in reader.episodes:
                for step in episode:
                    steps += step.timestep.observation.shape[0] > 0
    return steps


def run_decode(logs: str, out: str) -> int:
    import envlogger

    from rlds_hub.beam.sources.envlogger_codec import episode_steps
    from rlds_hub.beam.sources.envlogger_source import find_log_dirs

    steps = 0
    for directory in find_log_dirs(logs):
        with envlogger.Reader(directory) as reader:
            for index in range(len(reader.episodes)):
                steps += len(episode_steps(reader, index))
    return steps


def run_tfds(logs: str, out: str, workers: int = 0) -> int:
    import tensorflow_datasets as tfds
    from etils import epath
    from tensorflow_datasets.rlds import rlds_base

    config = rlds_base.DatasetConfig(
        name="workload",
        observation_info=tfds.features.Tensor(shape=(OBS,), dtype=np.float32),
        action_info=tfds.features.Tensor(shape=(ACT,), dtype=np.float32),
        reward_info=np.float64,
        discount_info=np.float64,
    )

    class TfdsOwnPath(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")
        BUILDER_CONFIGS = [config]  # noqa: RUF012

        def _info(self):
            return rlds_base.build_info(config, self)

        def _split_generators(self, dl_manager):
            if workers:
                return {"train": rlds_base.generate_beam_examples(epath.Path(logs))}
            return {"train": rlds_base.generate_examples(epath.Path(logs))}

        def _generate_examples(self, path):
            return rlds_base.generate_examples(path)

    kwargs = {}
    if workers:
        from apache_beam.options.pipeline_options import PipelineOptions

        kwargs["download_config"] = tfds.download.DownloadConfig(
            beam_options=PipelineOptions(
                [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
            )
        )
    builder = TfdsOwnPath(data_dir=out)
    builder.download_and_prepare(**kwargs)
    return builder.info.splits["train"].num_examples * EPISODE_STEPS


def run_ours(logs: str, out: str, workers: int = 1, dask: bool = False) -> int:
    from rlds_hub.beam.job_values import Run
    from rlds_hub.beam.jobs.convert import convert

    if not dask:
        flags = [
            "--runner=DirectRunner",
            "--direct_running_mode=multi_processing",
            f"--direct_num_workers={workers}",
        ]
        return convert(logs, os.path.join(out, "ds"), run=Run(beam_args=flags))["steps"]
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        flags = ["--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}"]
        return convert(logs, os.path.join(out, "ds"), run=Run(beam_args=flags))["steps"]


PROGRAMS = {
    "ceiling": ("ceiling: envlogger.Reader alone, decode every step (1 process)", run_ceiling, {}),
    "decode": ("ceiling: rlds_hub's step decoder alone (1 process)", run_decode, {}),
    "tfds": ("TFDS's own path, generator (rlds_base + envlogger reader)", run_tfds, {}),
    "tfds_beam1": ("TFDS's own path through Beam, 1 worker", run_tfds, {"workers": 1}),
    "tfds_beam2": ("TFDS's own path through Beam, 2 workers", run_tfds, {"workers": 2}),
    "ours1": ("rlds_hub convert, DirectRunner, 1 worker", run_ours, {"workers": 1}),
    "ours2": ("rlds_hub convert, DirectRunner, 2 workers", run_ours, {"workers": 2}),
    "dask2": (
        "rlds_hub convert, DaskRunner, LocalCluster of 2 workers",
        run_ours,
        {"workers": 2, "dask": True},
    ),
}


def child(name: str, logs: str) -> dict[str, Any]:
    """Runs one program (in the child process): steps and seconds."""
    out = tempfile.mkdtemp(prefix=f"bench-{name}-")
    try:
        _, program, kwargs = PROGRAMS[name]
        started = time.perf_counter()
        steps = program(logs, out, **kwargs)
        return {"steps": int(steps), "seconds": time.perf_counter() - started}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def measure(name: str, logs: str) -> dict[str, Any]:
    """Runs one program in a fresh process, sampling the process tree's total RSS."""
    result = harness.run_isolated(
        "benchmarks.pipeline_throughput:child", {"name": name, "logs": logs}, sample_memory=True
    )
    if "error" in result:
        raise RuntimeError(f"{name} failed: {result['error']}")
    result["peak_mib"] = result.pop("peak_tree_mib")
    result["rate"] = result["steps"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root",
        default=os.path.join(tempfile.gettempdir(), "rlds_hub_pipeline_bench"),
        help="where the workload logs are kept between runs",
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=1,
        help="also convert a dataset this many times larger (rlds_hub only)",
    )
    parser.add_argument(
        "--skip-tfds-beam",
        action="store_true",
        help="leave out TFDS's path through Beam (its slowest rows)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every row this many times, interleaved, and keep each "
        "row's best (a shared machine's load changes from row to row)",
    )
    args = parser.parse_args()
    print(harness.machine_line(("numpy", "rlds_hub", "apache-beam", "envlogger")), flush=True)
    logs = os.path.join(args.root, f"logs-{BASE_EPISODES}")
    started = time.perf_counter()
    make_logs(logs, BASE_EPISODES)
    print(
        f"workload: {BASE_EPISODES} episodes x {EPISODE_STEPS} steps in {LOG_DIRS} log "
        f"directories ({time.perf_counter() - started:.0f} s to write or find); "
        f"load average {harness.load_average()} at the start"
    )
    names = ["ceiling", "decode", "tfds"] + (
        [] if args.skip_tfds_beam else ["tfds_beam1", "tfds_beam2"]
    )
    names += ["ours1", "ours2", "dask2"]
    results: dict[str, dict] = {}
    spread: dict[str, list[float]] = {}
    for round_number in range(args.rounds):
        for name in names:
            result = measure(name, logs)
            spread.setdefault(name, []).append(result["rate"])
            if name not in results or result["rate"] > results[name]["rate"]:
                results[name] = result
            print(f"  round {round_number + 1}, {name}: {result['rate']:,.0f} steps/s", flush=True)
    big = {}
    if args.scale > 1:
        big_logs = os.path.join(args.root, f"logs-{BASE_EPISODES * args.scale}")
        make_logs(big_logs, BASE_EPISODES * args.scale)
        for name in ("ours1", "ours2"):
            big[name] = measure(name, big_logs)
            print(f"  {name} x{args.scale}: {big[name]['rate']:,.0f} steps/s", flush=True)
    reference = results["tfds"]["rate"]
    print()
    print(
        f"best of {args.rounds} interleaved round(s); every round's rates in brackets; "
        f"load average {harness.load_average()} at the end"
    )
    print()
    rows = [
        (
            PROGRAMS[name][0],
            f"{results[name]['rate']:,.0f} ({', '.join(f'{x / 1000:.1f}k' for x in spread[name])})",
            f"{results[name]['rate'] / reference:.2f}x",
            f"{results[name]['peak_mib']:,.0f}",
        )
        for name in names
    ]
    rows += [
        (
            f"{PROGRAMS[name][0]}, {args.scale}x the episodes",
            f"{r['rate']:,.0f}",
            f"{r['rate'] / reference:.2f}x",
            f"{r['peak_mib']:,.0f}",
        )
        for name, r in big.items()
    ]
    header = ["what", "steps/s", "vs TFDS's own path", "peak memory (MiB, all processes)"]
    print(harness.table(header, rows))
    one = results["ours1"]["rate"]
    efficiency = results["ours2"]["rate"] / (2 * one)
    print()
    print(
        f"two DirectRunner workers / one: {results['ours2']['rate'] / one:.2f}x "
        f"(parallel efficiency {efficiency:.0%}); one worker reaches "
        f"{one / results['decode']['rate']:.0%} of its decoder's ceiling"
    )
    # DROID 1.0.0 as RLDS: 92,233 episodes, 27,044,326 steps, ~1.7 TB (three camera streams
    # per step). This workload's steps are small, so its per-worker rate bounds what a
    # worker does per step from above; image-heavy steps cost more (PNG encoding).
    droid_steps = 27_044_326
    print(
        f"DROID-sized conversion ({droid_steps:,} steps) at this run's per-worker rate "
        f"({one:,.0f} steps/s) and {efficiency:.0%} parallel efficiency:"
    )
    for workers in (1, 8, 32, 128):
        rate = one * workers * (efficiency if workers > 1 else 1.0)
        print(f"  {workers:>4} workers: {droid_steps / rate / 3600:,.2f} h")
    frame = png_seconds()
    print(
        f"with DROID's three 180x320 RGB frames per step stored as PNG ({frame * 1e3:.1f} ms "
        "per synthetic frame here), encoding alone takes:"
    )
    for workers in (1, 32, 64, 128):
        hours = droid_steps * 3 * frame / (workers * (efficiency if workers > 1 else 1.0))
        print(f"  {workers:>4} workers: {hours / 3600:,.1f} h")
    print()


def png_seconds(frames: int = 60) -> float:
    """Seconds to PNG-encode (rlds_hub's encoder, level 1) one 180x320 RGB frame of a smooth
    synthetic scene with sensor-like noise (best of three passes)."""
    from rlds_hub.format.images import encode_png

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:180, 0:320]
    scene = np.stack([x * 0.8, y * 1.4, (x + y) * 0.5], -1)
    images = [
        np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8)
        for _ in range(frames)
    ]

    def encode_all() -> None:
        for image in images:
            encode_png(image, 1)

    return harness.best_of(encode_all, 3) / frames


if __name__ == "__main__":
    main()
