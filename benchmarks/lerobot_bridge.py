"""The RLDS <-> LeRobot bridge, side by side in one run, on the camera workload.

Workload (``rlds_hub.testing.cameras``, the OXE-like camera workload): ``--episodes`` episodes
of ``--steps`` steps, two 180x320 RGB cameras per step (a textured moving scene and a wrist
camera), 7-d state and actions, one instruction per episode; stored as rlds_hub's PNG store
(4 shards).

RLDS -> LeRobot, each row in its own process (``harness.run_isolated``):

- ``lerobot_video`` / ``lerobot_image``: LeRobot 0.4.4's own writer fed the same episodes frame by
  frame (``create`` + ``add_frame`` + ``save_episode`` + ``finalize``, its documented porting
  path; ``benchmarks/lerobot_frames.py write`` in LeRobot's venv, LeRobot's default
  ``image_writer_threads=0``; only the writer's calls are timed), as AV1 video (LeRobot's
  default: libsvtav1, crf 30, 2-frame GOP) or as PNG images;
- ``ours_av1_1`` / ``ours_av1_2`` / ``ours_av1_dask2``: ``rlds-hub export --format lerobot
  --video-codec av1`` on the DirectRunner with 1 and 2 worker processes and on the DaskRunner
  (LocalCluster of 2 processes); the whole job, start-up and PSNR/SSIM included;
- ``ours_none_1`` / ``ours_none_2``: ``--video-codec none`` (the stored PNG frames copied into
  the Parquet) on 1 and 2 workers;
- ``ceiling_av1``: FFmpeg's AV1 encoder alone on the same frames, already in memory (the bound
  of any AV1 export per core).

LeRobot -> RLDS, on the dataset LeRobot's writer made (image variant: PNG in the Parquet):

- ``tfds_builder``: the path a user writes, a TFDS ``GeneratorBasedBuilder`` reading the LeRobot
  Parquet files with pyarrow and yielding episodes (frames decoded, TFDS re-encodes them);
- ``ours_from_lerobot_1`` / ``_2`` / ``_dask2``: ``rlds-hub convert --source-format lerobot``;
- ``ours_from_video_1``: the same from LeRobot's AV1 variant (frames decoded from MP4).

``--av1-only`` runs only LeRobot's AV1 writer, the AV1 ceiling and our AV1 export on 1
worker; ``--before TREE`` adds the same export by an older rlds_hub checkout (``git archive
<commit> rlds_hub | tar -x -C TREE``) as the row ``before_av1_1``, in the same run.

Figures: steps/s (wall clock) and steps per CPU-second (user + system seconds of the row's
whole process tree: workers, FFmpeg and LeRobot's encoder threads included) — "per core".
Our rows also list each process's CPU seconds (the row's driver and every Beam / Dask worker,
sampled every 0.2 s), which shows whether a second worker got half the work.

Run from the repository root:

    python -m benchmarks.lerobot_bridge [--episodes 16] [--steps 100] [--json out.json]
    python -m benchmarks.lerobot_bridge --scaling --episodes 12
    python -m benchmarks.lerobot_bridge --av1-only --before /tmp/before  # one export, old vs new

``--scaling`` runs only the worker-scaling comparison and its baselines: LeRobot's two
writers, the AV1 ceiling, the export (AV1 and ``none``) and the convert (from LeRobot's PNG
dataset) on 1 and 2 DirectRunner workers. The convert's default units give 12 episodes in
LeRobot's 3 data files 12 units of 1 (6 per worker); ``--episodes-per-unit N`` sets the
size (the old default, 8, made 3 units of 4, split 2:1 between 2 workers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import harness

PEER = Path(__file__).with_name("lerobot_frames.py")  # LeRobot's side, run in its venv
FPS = 10
SHARDS = 4


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _flags(workers: int, dask_scheduler: str | None) -> list[str]:
    if dask_scheduler:
        return [
            "--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
            f"--dask_client_address={dask_scheduler}",
        ]
    return [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        f"--direct_num_workers={workers}",
    ]


def _role(process: Any) -> str:
    if process.pid == os.getpid():
        return "driver"
    with contextlib.suppress(Exception):
        command = " ".join(process.cmdline())
        if "sdk_worker_main" in command:
            return "beam worker"
        if "dask" in command or "multiprocessing" in command:
            return "dask/multiprocessing worker"
    with contextlib.suppress(Exception):
        return process.name()
    return "?"


@contextlib.contextmanager
def process_cpu(interval: float = 0.2) -> Iterator[list[dict[str, Any]]]:
    """Samples this process and every descendant every ``interval`` seconds; on exit the
    yielded list holds one entry per process: role, CPU seconds (user + system, all its
    threads; the last sample, so a process that ended loses at most ``interval``), seconds
    alive while sampled, cores used on average, most threads seen. Sorted by CPU."""
    import psutil

    seen: dict[int, dict[str, Any]] = {}
    stop = threading.Event()
    me = psutil.Process()

    def sample() -> None:
        while True:
            now = time.perf_counter()
            for process in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    with process.oneshot():
                        times = process.cpu_times()
                        threads = process.num_threads()
                    entry = seen.setdefault(
                        process.pid,
                        {"pid": process.pid, "role": _role(process), "first": now, "threads": 0},
                    )
                    entry["cpu_total"] = times.user + times.system
                    entry.setdefault("cpu_first", entry["cpu_total"])
                    entry["last"] = now
                    entry["threads"] = max(entry["threads"], threads)
            if stop.wait(interval):
                return

    out: list[dict[str, Any]] = []
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        for entry in seen.values():
            # the driver's CPU before the row started is not the row's; others start at 0
            base = entry["cpu_first"] if entry["pid"] == me.pid else 0.0
            cpu = entry["cpu_total"] - base
            alive = max(entry["last"] - entry["first"], interval)
            out.append(
                {
                    "pid": entry["pid"],
                    "role": entry["role"],
                    "cpu_seconds": round(cpu, 2),
                    "seconds": round(alive, 2),
                    "cores": round(cpu / alive, 2),
                    "threads": entry["threads"],
                }
            )
        out.sort(key=lambda e: -e["cpu_seconds"])


def _with_runner(workers: int, dask: bool, job: Any) -> dict[str, Any]:
    """Runs ``job(flags)`` timed (wall and CPU of the process tree, CPU per process)."""
    started, cpu = time.perf_counter(), _cpu()
    with process_cpu() as processes:
        if not dask:
            result = job(_flags(workers, None))
        else:
            from dask.distributed import LocalCluster

            with LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster:
                result = job(_flags(workers, cluster.scheduler_address))
    result.update(seconds=time.perf_counter() - started, cpu_seconds=_cpu() - cpu)
    result["processes"] = [p for p in processes if p["cpu_seconds"] >= 0.05]
    return result


def run_export(
    source: str, out: str, codec: str, workers: int = 1, dask: bool = False
) -> dict[str, Any]:
    """rlds_hub's export of the PNG store to LeRobot."""
    from rlds_hub.beam.job_values import Run
    from rlds_hub.beam.jobs.export import export

    def job(flags: list[str]) -> dict[str, Any]:
        summary = export(
            source,
            out,
            format="lerobot",
            video_codec=codec,
            fps=FPS,
            run=Run(beam_args=flags, quiet=True),
        )
        return {"steps": summary["frames"], "video_quality": summary["video_quality"]}

    return _with_runner(workers, dask, job)


def run_convert(
    source: str,
    out: str,
    workers: int = 1,
    dask: bool = False,
    episodes_per_unit: int | None = None,
) -> dict[str, Any]:
    """rlds_hub's convert of a LeRobot dataset to RLDS (``episodes_per_unit``: the source's
    unit size, default the convert's)."""
    from rlds_hub.beam.job_values import Run
    from rlds_hub.beam.jobs.convert import convert

    options = {} if episodes_per_unit is None else {"episodes_per_unit": episodes_per_unit}

    def job(flags: list[str]) -> dict[str, Any]:
        summary = convert(
            source,
            out,
            source_format="lerobot",
            run=Run(beam_args=flags, quiet=True),
            **options,
        )
        return {"steps": summary["steps"]}

    return _with_runner(workers, dask, job)


def run_lerobot_writer(root: str, mode: str, episodes: int, steps: int) -> dict[str, Any]:
    """LeRobot's own writer (in LeRobot's venv); the writer's own seconds."""
    from rlds_hub.testing.lerobot_peer import lerobot_python

    command = [str(lerobot_python()), str(PEER), "write", "--root", root, "--mode", mode]
    command += ["--episodes", str(episodes), "--steps", str(steps), "--fps", str(FPS)]
    command += ["--image-writer-threads", "0"]  # LeRobotDataset.create's default
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"LeRobot's writer failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_encode_ceiling(episodes: int, steps: int, out: str) -> dict[str, Any]:
    """FFmpeg's AV1 encoder alone on the workload's frames (generated first, not timed)."""
    from rlds_hub.lerobot.encoding import VideoEncoder
    from rlds_hub.testing import cameras

    workload = cameras.CameraWorkload(episodes=episodes, steps=steps)
    wall = cpu = 0.0
    for episode in range(episodes):
        columns = cameras.episode_columns(workload, episode)
        for name in cameras.CAMERAS:
            frames = columns[f"steps/observation/{name}"]
            started, cpu_started = time.perf_counter(), _cpu()
            encoder = VideoEncoder(
                Path(out) / f"{name}-{episode}.mp4", "av1", FPS, workload.height, workload.width
            )
            encoder.write(frames)
            encoder.close()
            wall += time.perf_counter() - started
            cpu += _cpu() - cpu_started
    return {"steps": episodes * steps, "seconds": wall, "cpu_seconds": cpu}


def run_tfds_builder(source: str, out: str) -> dict[str, Any]:
    """A TFDS GeneratorBasedBuilder over the LeRobot Parquet files (image variant)."""
    import io

    import numpy as np
    import pyarrow.parquet as pq
    import tensorflow_datasets as tfds
    from PIL import Image

    started, cpu = time.perf_counter(), _cpu()
    info = json.loads((Path(source) / "meta" / "info.json").read_text())
    tasks = pq.read_table(Path(source) / "meta" / "tasks.parquet").to_pandas()
    task_of = {int(i): text for text, i in zip(tasks.index, tasks["task_index"], strict=True)}
    cameras = [k for k, v in info["features"].items() if v["dtype"] == "image"]
    shape = tuple(info["features"][cameras[0]]["shape"])

    class LeRobotPort(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self) -> Any:
            images = {k.split(".")[-1]: tfds.features.Image(shape=shape) for k in cameras}
            step = {
                "observation": tfds.features.FeaturesDict(
                    {**images, "state": tfds.features.Tensor(shape=(7,), dtype=np.float32)}
                ),
                "action": tfds.features.Tensor(shape=(7,), dtype=np.float32),
                "is_first": np.bool_,
                "is_last": np.bool_,
                "is_terminal": np.bool_,
                "language_instruction": tfds.features.Text(),
            }
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict({"steps": tfds.features.Dataset(step)}),
            )

        def _split_generators(self, dl_manager: Any) -> Any:
            return {"train": self._generate_examples()}

        def _generate_examples(self) -> Any:
            for path in sorted((Path(source) / "data").glob("*/*.parquet")):
                table = pq.read_table(path).to_pydict()
                episodes = table["episode_index"]
                start = 0
                while start < len(episodes):
                    end = start
                    while end < len(episodes) and episodes[end] == episodes[start]:
                        end += 1
                    steps = []
                    for i in range(start, end):
                        observation = {
                            key.split(".")[-1]: np.asarray(
                                Image.open(io.BytesIO(table[key][i]["bytes"])).convert("RGB")
                            )
                            for key in cameras
                        }
                        observation["state"] = np.asarray(table["observation.state"][i], np.float32)
                        steps.append(
                            {
                                "observation": observation,
                                "action": np.asarray(table["action"][i], np.float32),
                                "is_first": i == start,
                                "is_last": i == end - 1,
                                "is_terminal": i == end - 1,
                                "language_instruction": task_of[table["task_index"][i]],
                            }
                        )
                    yield int(episodes[start]), {"steps": steps}
                    start = end

    builder = LeRobotPort(data_dir=out)
    builder.download_and_prepare()
    steps = info["total_frames"]
    return {"steps": steps, "seconds": time.perf_counter() - started, "cpu_seconds": _cpu() - cpu}


def _row(name: str, target: str, config: dict[str, Any], tree: str | None = None) -> dict[str, Any]:
    print(f"{name}: running (load average {harness.load_average()})", flush=True)
    result = harness.run_isolated(f"benchmarks.lerobot_bridge:{target}", config, tree=tree)
    if "error" in result:
        print(f"{name}: {result['error']}", flush=True)
        return result
    result["steps_per_s"] = result["steps"] / result["seconds"]
    result["steps_per_cpu_s"] = result["steps"] / result["cpu_seconds"]
    print(
        f"{name}: {result['steps']} steps in {result['seconds']:.1f} s "
        f"({result['steps_per_s']:.1f} steps/s, {result['steps_per_cpu_s']:.1f} per CPU-s)",
        flush=True,
    )
    if result.get("processes"):
        print(f"  CPU per process: {_processes_line(result['processes'])}", flush=True)
    return result


def _processes_line(processes: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{p['role']} {p['cpu_seconds']:.1f} CPU-s ({p['cores']:.2f} cores over "
        f"{p['seconds']:.0f} s, {p['threads']} threads)"
        for p in processes
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--episodes-per-unit",
        type=int,
        default=None,
        help="the convert rows' work-unit size (default: the convert's, at least 4 units per "
        "worker within LeRobot's data files, at most 8 episodes a unit)",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="only the worker-scaling comparison (1 vs 2 DirectRunner workers) and the "
        "baselines it needs (LeRobot's writers, the AV1 ceiling)",
    )
    parser.add_argument(
        "--av1-only",
        action="store_true",
        help="only the AV1 export on 1 worker and its baselines (LeRobot's AV1 writer, the "
        "encoder alone, and --before's export)",
    )
    parser.add_argument(
        "--before",
        default=None,
        help="an older rlds_hub checkout (e.g. git archive of a commit): its AV1 export on 1 "
        "worker is measured in the same run (row before_av1_1)",
    )
    parser.add_argument(
        "--work",
        default=None,
        help="work directory; an RLDS store of the same workload already in <work>/rlds/png "
        "is reused (kept afterwards)",
    )
    args = parser.parse_args()
    print(harness.machine_line(("numpy", "rlds_hub", "apache-beam")), flush=True)
    uptime_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime at the start: {uptime_start}", flush=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-lerobot-bridge-"))
    from rlds_hub.storage.dataset import open_dataset
    from rlds_hub.testing import cameras

    workload = cameras.CameraWorkload(episodes=args.episodes, steps=args.steps)
    print(f"workload: {args.episodes} episodes x {args.steps} steps, 2 cameras 180x320", flush=True)
    store = str(work / "rlds" / "png")
    if (work / "rlds" / "png" / "dataset_info.json").exists():
        if open_dataset(store).num_episodes != args.episodes:
            raise SystemExit(f"{store} holds another workload: use another --work")
        print(f"reusing {store}", flush=True)
    else:
        cameras.write_camera_datasets(work / "rlds", workload, jpeg=False, shards=SHARDS)
    for name in os.listdir(work):
        if name != "rlds":
            shutil.rmtree(work / name)  # earlier runs' outputs
    sizes = {"episodes": args.episodes, "steps": args.steps}
    rows: dict[str, dict[str, Any]] = {}
    rows["lerobot_video"] = _row(
        "lerobot_video",
        "run_lerobot_writer",
        {"root": str(work / "lerobot_video"), "mode": "video", **sizes},
    )
    if not args.av1_only:
        rows["lerobot_image"] = _row(
            "lerobot_image",
            "run_lerobot_writer",
            {"root": str(work / "lerobot_image"), "mode": "image", **sizes},
        )
    rows["ceiling_av1"] = _row(
        "ceiling_av1", "run_encode_ceiling", {**sizes, "out": str(work / "ceiling")}
    )
    _drop(work / "ceiling", args.keep)
    exports = [
        ("ours_av1_1", "av1", 1, False),
        ("ours_av1_2", "av1", 2, False),
        ("ours_av1_dask2", "av1", 2, True),
        ("ours_none_1", "none", 1, False),
        ("ours_none_2", "none", 2, False),
    ]
    converts = [
        ("ours_from_lerobot_1", "lerobot_image", 1, False),
        ("ours_from_lerobot_2", "lerobot_image", 2, False),
        ("ours_from_lerobot_dask2", "lerobot_image", 2, True),
        ("ours_from_video_1", "lerobot_video", 1, False),
    ]
    if args.scaling:  # DirectRunner 1 vs 2 workers only
        exports = [row for row in exports if not row[3]]
        converts = [row for row in converts if not row[3] and row[1] == "lerobot_image"]
    if args.av1_only:
        exports, converts = exports[:1], []
    if args.before:
        exports.insert(0, ("before_av1_1", "av1", 1, False))
    for name, codec, workers, dask in exports:
        config = {"source": store, "out": str(work / name), "codec": codec}
        tree = args.before if name.startswith("before_") else None
        rows[name] = _row(
            name, "run_export", {**config, "workers": workers, "dask": dask}, tree=tree
        )
        _drop(work / name, args.keep)
    if not (args.scaling or args.av1_only):
        rows["tfds_builder"] = _row(
            "tfds_builder",
            "run_tfds_builder",
            {"source": str(work / "lerobot_image"), "out": str(work / "tfds_builder")},
        )
        _drop(work / "tfds_builder", args.keep)
    for name, source, workers, dask in converts:
        config = {"source": str(work / source), "out": str(work / name)}
        config["episodes_per_unit"] = args.episodes_per_unit
        rows[name] = _row(name, "run_convert", {**config, "workers": workers, "dask": dask})
        _drop(work / name, args.keep)
    uptime_end = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime at the end: {uptime_end}", flush=True)
    report = _report(rows)
    print(report, flush=True)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": harness.machine(("numpy", "rlds_hub", "apache-beam")),
        "uptime_start": uptime_start,
        "uptime_end": uptime_end,
        "workload": {**sizes, "height": 180, "width": 320, "cameras": 2, "shards": SHARDS},
        "scaling_only": args.scaling,
        "av1_only": args.av1_only,
        "before": args.before,
        "episodes_per_unit": args.episodes_per_unit,
        "rows": rows,
        "report": report,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    if not (args.keep or args.work):
        shutil.rmtree(work, ignore_errors=True)


def _drop(output: Path, keep: bool) -> None:
    """A row's output, removed once measured (unless ``--keep``): the disk holds at most the
    store, LeRobot's two datasets and one row's output at a time."""
    if not keep:
        shutil.rmtree(output, ignore_errors=True)


def _rate(rows: dict[str, dict[str, Any]], name: str, key: str) -> float | None:
    row = rows.get(name, {})
    return row.get(key) if "error" not in row else None


def _report(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        harness.table(
            ["row", "steps/s", "steps per CPU-s", "seconds", "CPU-s"],
            [
                (
                    name,
                    f"{row['steps_per_s']:.1f}",
                    f"{row['steps_per_cpu_s']:.1f}",
                    f"{row['seconds']:.1f}",
                    f"{row['cpu_seconds']:.1f}",
                )
                if "error" not in row
                else (name, "error", row["error"][:60], "", "")
                for name, row in rows.items()
            ],
        )
    ]
    checks = (
        (
            "per core, AV1 export vs LeRobot's writer (>= 3x)",
            "ours_av1_1",
            "lerobot_video",
            3.0,
            "steps_per_cpu_s",
        ),
        (
            "per core, lossless export vs LeRobot's image writer (>= 3x)",
            "ours_none_1",
            "lerobot_image",
            3.0,
            "steps_per_cpu_s",
        ),
        (
            "per core, AV1 export vs the AV1 encoder alone (ceiling)",
            "ours_av1_1",
            "ceiling_av1",
            None,
            "steps_per_cpu_s",
        ),
        (
            "per core, AV1 export vs --before's",
            "ours_av1_1",
            "before_av1_1",
            None,
            "steps_per_cpu_s",
        ),
        (
            "per core, --before's AV1 export vs the AV1 encoder alone",
            "before_av1_1",
            "ceiling_av1",
            None,
            "steps_per_cpu_s",
        ),
        ("2 workers vs 1, AV1 export (>= 1.7x)", "ours_av1_2", "ours_av1_1", 1.7, "steps_per_s"),
        (
            "2 workers vs 1, lossless export (>= 1.7x)",
            "ours_none_2",
            "ours_none_1",
            1.7,
            "steps_per_s",
        ),
        (
            "DaskRunner 2 vs DirectRunner 1, export",
            "ours_av1_dask2",
            "ours_av1_1",
            None,
            "steps_per_s",
        ),
        (
            "per core, convert vs the TFDS builder (>= 3x)",
            "ours_from_lerobot_1",
            "tfds_builder",
            3.0,
            "steps_per_cpu_s",
        ),
        (
            "2 workers vs 1, convert (>= 1.7x)",
            "ours_from_lerobot_2",
            "ours_from_lerobot_1",
            1.7,
            "steps_per_s",
        ),
    )
    for label, ours, theirs, target, key in checks:
        a, b = _rate(rows, ours, key), _rate(rows, theirs, key)
        if a is None or b is None:
            lines.append(f"- {label}: not measured")
            continue
        verdict = "" if target is None else (" — met" if a / b >= target else " — NOT met")
        lines.append(f"- {label}: {a:.1f} / {b:.1f} = {a / b:.2f}x{verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
