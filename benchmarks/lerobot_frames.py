"""LeRobot's side of the camera benchmarks, run BY PATH with LeRobot's own interpreter
(``.venv-lerobot/bin/python benchmarks/lerobot_frames.py write|read ...``) by
``python -m benchmarks.frames_throughput`` and ``python -m benchmarks.lerobot_bridge``: it
imports LeRobot, torch and NumPy only (never rlds_hub, which is not installed there), times
itself and prints one JSON line.

- ``write``: the camera workload's episodes (the same frames, state, actions and instructions:
  ``rlds_hub/testing/cameras.py`` loaded by path, it needs NumPy only) written with LeRobot's
  own writer — ``LeRobotDataset.create`` + ``add_frame`` per step + ``save_episode`` per
  episode + ``finalize``, its documented porting path — as MP4 video (LeRobot's default
  codec) or as images. Each episode is generated first and only the writer's calls are
  timed: wall-clock seconds and CPU seconds (user + system of this process and its
  children, threads included), so the figures are the writer's own cost.
- ``read``: ``LeRobotDataset(..., delta_timestamps=...)`` under a ``torch.utils.data.DataLoader``
  with worker processes, shuffled, single steps or windows (history + action chunk), for a
  time budget after the first batch; samples/s.
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
FPS = 10
IMAGE_KEYS = {"image": "observation.images.image", "wrist_image": "observation.images.wrist"}


def _cameras_module() -> Any:
    """rlds_hub/testing/cameras.py, loaded by path (NumPy only)."""
    spec = importlib.util.spec_from_file_location("rlds_hub_cameras_workload", CAMERAS_MODULE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def cpu_seconds() -> float:
    """User + system seconds of this process and its waited-for children (threads included)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class _Clock:
    """Adds up the wall-clock and CPU seconds of the ``with`` blocks it times."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += cpu_seconds() - self._cpu


def repo_id(mode: str) -> str:
    """The repo id ``write`` gives the dataset (and ``read`` opens it with)."""
    return f"rlds_hub/camera_workload_{mode}"


def write(args: argparse.Namespace) -> dict[str, Any]:
    """The workload's first ``--episodes`` episodes through LeRobot's writer; the writer's
    own seconds and CPU seconds (generating the episodes is not timed)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    cameras = _cameras_module()
    workload = cameras.CameraWorkload(
        episodes=args.episodes, steps=args.steps, height=args.height, width=args.width
    )
    dtype = "video" if args.mode == "video" else "image"
    shape = (args.height, args.width, 3)
    features: dict[str, Any] = {
        key: {"dtype": dtype, "shape": shape, "names": ["height", "width", "channels"]}
        for key in IMAGE_KEYS.values()
    }
    features["observation.state"] = {"dtype": "float32", "shape": (7,), "names": None}
    features["action"] = {"dtype": "float32", "shape": (7,), "names": None}
    threads = args.image_writer_threads
    if threads is None:
        threads = 4 if args.mode == "image" else 0
    clock = _Clock()
    with clock:
        dataset = LeRobotDataset.create(
            repo_id=repo_id(args.mode),
            fps=args.fps,
            features=features,
            root=args.root,
            use_videos=args.mode == "video",
            image_writer_threads=threads,
        )
    for episode in range(args.episodes):
        columns = cameras.episode_columns(workload, episode)  # not timed
        frames = {key: columns[f"steps/observation/{name}"] for name, key in IMAGE_KEYS.items()}
        with clock:
            for t in range(args.steps):
                frame = {key: values[t] for key, values in frames.items()}
                frame["observation.state"] = columns["steps/observation/state"][t]
                frame["action"] = columns["steps/action"][t]
                frame["task"] = str(columns["steps/language_instruction"][t])
                dataset.add_frame(frame)
            dataset.save_episode()
        print(f"  lerobot {args.mode}: episode {episode + 1}/{args.episodes}", file=sys.stderr)
    with clock:
        dataset.finalize()
    size = sum(p.stat().st_size for p in Path(args.root).rglob("*") if p.is_file())
    return {
        "steps": args.episodes * args.steps,
        "seconds": clock.wall,
        "cpu_seconds": clock.cpu,
        "bytes": size,
        "codec": _codec(args),
        "image_writer_threads": threads,
    }


def _codec(args: argparse.Namespace) -> str:
    if args.mode != "video":
        return "png images"
    info = json.loads((Path(args.root) / "meta" / "info.json").read_text())
    video = info["features"][IMAGE_KEYS["image"]].get("info", {})
    return str(video.get("video.codec", "?"))


def read(args: argparse.Namespace) -> dict[str, Any]:
    """Shuffled batches through LeRobotDataset + DataLoader for ``--seconds``."""
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    delta = None
    if args.history or args.chunk > 1:
        past = [(t - args.history) / args.fps for t in range(args.history + 1)]
        delta = {key: past for key in IMAGE_KEYS.values()}
        delta["observation.state"] = past
        delta["action"] = [t / args.fps for t in range(args.chunk)]
    dataset = LeRobotDataset(repo_id(args.mode), root=args.root, delta_timestamps=delta)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    first = next(iter(loader))  # starts the workers
    shapes = {k: list(v.shape) for k, v in first.items() if isinstance(v, torch.Tensor)}
    samples, started = 0, time.perf_counter()
    while time.perf_counter() - started < args.seconds:  # epochs, until the budget is spent
        for batch in loader:
            samples += len(batch["index"])
            if time.perf_counter() - started >= args.seconds:
                break
    seconds = time.perf_counter() - started
    return {
        "samples": samples,
        "seconds": seconds,
        "shapes": shapes,
        "video_backend": dataset.video_backend,
        "dataset_steps": dataset.num_frames,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["write", "read"])
    parser.add_argument("--root", required=True)
    parser.add_argument("--mode", choices=["video", "image"], required=True)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--history", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--fps", type=int, default=FPS)
    parser.add_argument(
        "--image-writer-threads",
        type=int,
        default=None,
        help="LeRobot's image_writer_threads (default: 4 for images, 0 for video)",
    )
    args = parser.parse_args()
    result = write(args) if args.command == "write" else read(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
