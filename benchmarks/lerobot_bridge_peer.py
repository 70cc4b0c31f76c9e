"""LeRobot's own writer on the camera workload, for ``python -m benchmarks.lerobot_bridge``:
run BY PATH with LeRobot's interpreter (``.venv-lerobot/bin/python
benchmarks/lerobot_bridge_peer.py --root DIR --mode video|image ...``); imports LeRobot and
NumPy only (rlds_hub is not installed there) and prints one JSON line.

The documented porting path: ``LeRobotDataset.create`` + ``add_frame`` per step +
``save_episode`` per episode + ``finalize``. Each episode is generated first
(``rlds_hub/testing/cameras.py``, loaded by path) and only the writer's calls are timed:
wall-clock seconds and CPU seconds (user + system of this process and its children, threads
included), so the figure is the writer's own cost.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

CAMERAS_MODULE = Path(__file__).resolve().parents[1] / "rlds_hub" / "testing" / "cameras.py"
KEYS = {"image": "observation.images.image", "wrist_image": "observation.images.wrist_image"}


def _cameras() -> Any:
    spec = importlib.util.spec_from_file_location("rlds_hub_cameras_workload", CAMERAS_MODULE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cpu_seconds() -> float:
    """User + system seconds of this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def write(args: argparse.Namespace) -> dict[str, Any]:
    """The workload through LeRobot's writer; the writer's seconds only."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    cameras = _cameras()
    workload = cameras.CameraWorkload(
        episodes=args.episodes, steps=args.steps, height=args.height, width=args.width
    )
    dtype = "video" if args.mode == "video" else "image"
    shape = (args.height, args.width, 3)
    features: dict[str, Any] = {
        key: {"dtype": dtype, "shape": shape, "names": ["height", "width", "channels"]}
        for key in KEYS.values()
    }
    features["observation.state"] = {"dtype": "float32", "shape": (7,), "names": None}
    features["action"] = {"dtype": "float32", "shape": (7,), "names": None}
    wall, cpu = 0.0, 0.0
    started, cpu_started = time.perf_counter(), cpu_seconds()
    dataset = LeRobotDataset.create(
        repo_id="rlds_hub/bridge",
        fps=args.fps,
        features=features,
        root=args.root,
        use_videos=args.mode == "video",
    )
    wall += time.perf_counter() - started
    cpu += cpu_seconds() - cpu_started
    for episode in range(args.episodes):
        columns = cameras.episode_columns(workload, episode)  # not timed
        started, cpu_started = time.perf_counter(), cpu_seconds()
        for t in range(args.steps):
            frame = {key: columns[f"steps/observation/{name}"][t] for name, key in KEYS.items()}
            frame["observation.state"] = columns["steps/observation/state"][t]
            frame["action"] = columns["steps/action"][t]
            frame["task"] = str(columns["steps/language_instruction"][t])
            dataset.add_frame(frame)
        dataset.save_episode()
        wall += time.perf_counter() - started
        cpu += cpu_seconds() - cpu_started
        print(f"  lerobot {args.mode}: episode {episode + 1}/{args.episodes}", file=sys.stderr)
    started, cpu_started = time.perf_counter(), cpu_seconds()
    dataset.finalize()
    wall += time.perf_counter() - started
    cpu += cpu_seconds() - cpu_started
    size = sum(p.stat().st_size for p in Path(args.root).rglob("*") if p.is_file())
    return {
        "steps": args.episodes * args.steps,
        "seconds": wall,
        "cpu_seconds": cpu,
        "bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="the dataset directory (must not exist)")
    parser.add_argument("--mode", choices=["video", "image"], required=True)
    parser.add_argument("--episodes", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--fps", type=int, default=10)
    print(json.dumps(write(parser.parse_args())))


if __name__ == "__main__":
    main()
