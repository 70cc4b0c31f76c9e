"""LeRobot's own writer and reader, driven from the command line (run in LeRobot's venv).

This file is run BY PATH with the interpreter of the LeRobot virtual environment
(``.venv-lerobot/bin/python rlds_hub/testing/lerobot_peer.py write|read ...``): rlds_hub is
not installed there, so it imports only LeRobot, NumPy, torch and the standard library. The
main venv runs it through :func:`run_peer` (and :func:`write_dataset`, :func:`read_dataset`),
which find that interpreter in ``RLDS_HUB_LEROBOT_PYTHON`` or the repository's
``.venv-lerobot`` and import nothing from LeRobot themselves.

``write`` makes a dataset with ``LeRobotDataset.create`` + ``add_frame`` + ``save_episode`` +
``finalize``: two cameras (``video`` or ``image`` dtype), ``observation.state``, ``action``,
optional ``next.reward`` / ``next.done``, a task per episode, deterministic content from a seed.
``read`` loads one with ``LeRobotDataset(repo_id, root=...)`` and dumps ``dataset[i]`` to an
``.npz`` (``"<i>/<key>"`` arrays) plus a JSON file (fps, features, tasks per item, the
warnings LeRobot logged).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

PYTHON_VARIABLE = "RLDS_HUB_LEROBOT_PYTHON"
CAMERAS = ("observation.images.front", "observation.images.wrist")
TASKS = ("pick up the red cube", "open the drawer", "push the block to the left")


def _features(
    camera_dtype: str, height: int, width: int, state_dim: int, action_dim: int, rewards: bool
) -> dict[str, dict[str, Any]]:
    """The LeRobot feature table of the generated dataset."""
    features: dict[str, dict[str, Any]] = {
        camera: {
            "dtype": camera_dtype,
            "shape": (height, width, 3),
            "names": ["height", "width", "channels"],
        }
        for camera in CAMERAS
    }
    features["observation.state"] = {
        "dtype": "float32",
        "shape": (state_dim,),
        "names": [f"joint_{i}" for i in range(state_dim)],
    }
    features["action"] = {
        "dtype": "float32",
        "shape": (action_dim,),
        "names": [f"motor_{i}" for i in range(action_dim)],
    }
    if rewards:
        features["next.reward"] = {"dtype": "float32", "shape": (1,), "names": None}
        features["next.done"] = {"dtype": "bool", "shape": (1,), "names": None}
    return features


def _frame_image(
    rng: np.random.Generator, step: int, camera: int, height: int, width: int
) -> np.ndarray:
    """A smooth picture with a moving square and a little noise (compresses like a camera)."""
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.empty((height, width, 3), dtype=np.float64)
    image[..., 0] = 255.0 * xs / max(width - 1, 1)
    image[..., 1] = 255.0 * ys / max(height - 1, 1)
    image[..., 2] = 128.0 + 60.0 * camera
    side = max(2, height // 4)
    top = (step * 2 + 3 * camera) % max(height - side, 1)
    left = (step * 3) % max(width - side, 1)
    image[top : top + side, left : left + side] = (250.0, 30.0 + 100 * camera, 40.0)
    image += rng.normal(0.0, 4.0, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write(args: argparse.Namespace) -> None:
    """Write a dataset with LeRobot's own recording API."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    rng = np.random.default_rng(args.seed)
    lengths = [int(n) for n in args.steps.split(",")]
    if len(lengths) == 1:
        lengths = lengths * args.episodes
    if len(lengths) != args.episodes:
        raise SystemExit(f"--steps gives {len(lengths)} lengths for {args.episodes} episodes")
    features = _features(
        args.camera_dtype, args.height, args.width, args.state_dim, args.action_dim, args.rewards
    )
    dataset = LeRobotDataset.create(
        repo_id=args.repo_id,
        fps=args.fps,
        features=features,
        root=args.root,
        robot_type=args.robot_type,
        use_videos=args.camera_dtype == "video",
        vcodec=args.vcodec,
    )
    for episode, length in enumerate(lengths):
        task = TASKS[episode % len(TASKS)]
        for step in range(length):
            frame: dict[str, Any] = {
                camera: _frame_image(rng, step, number, args.height, args.width)
                for number, camera in enumerate(CAMERAS)
            }
            frame["observation.state"] = rng.normal(size=args.state_dim).astype(np.float32)
            frame["action"] = rng.uniform(-1, 1, size=args.action_dim).astype(np.float32)
            if args.rewards:
                last = step == length - 1
                frame["next.reward"] = np.array([1.0 if last else 0.0], dtype=np.float32)
                frame["next.done"] = np.array([last], dtype=bool)
            frame["task"] = task
            dataset.add_frame(frame)
        dataset.save_episode(parallel_encoding=False)
    dataset.finalize()
    print(json.dumps({"root": str(args.root), "episodes": len(lengths), "frames": sum(lengths)}))


class _Collect(logging.Handler):
    """Keeps every WARNING-or-worse record logged while the dataset loads and reads."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname}: {record.getMessage()}")


def _as_array(value: Any) -> np.ndarray | None:
    """A NumPy copy of a dataset[i] value; None for values that are not arrays (strings)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (bool, int, float)):
        return np.asarray(value)
    return None


def read(args: argparse.Namespace) -> None:
    """Load a dataset with LeRobotDataset and dump dataset[i] values."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    collect = _Collect()
    logging.getLogger().addHandler(collect)
    delta = json.loads(args.delta_timestamps) if args.delta_timestamps else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = LeRobotDataset(
            args.repo_id,
            root=args.root,
            delta_timestamps=delta,
            video_backend=args.video_backend,
        )
        indices = [int(i) for i in args.indices.split(",")] if args.indices else range(len(dataset))
        arrays: dict[str, np.ndarray] = {}
        strings: dict[str, dict[str, str]] = {}
        for index in indices:
            item = dataset[index]
            for key, value in item.items():
                array = _as_array(value)
                if array is None:
                    strings.setdefault(str(index), {})[key] = str(value)
                else:
                    arrays[f"{index}/{key}"] = array
    logging.getLogger().removeHandler(collect)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    meta = {
        "fps": dataset.fps,
        "num_frames": dataset.num_frames,
        "num_episodes": dataset.num_episodes,
        "features": dataset.features,
        "video_backend": dataset.video_backend,
        "indices": [int(i) for i in indices],
        "strings": strings,
        "warnings": collect.messages + [str(w.message) for w in caught],
    }
    Path(str(out) + ".json").write_text(json.dumps(meta, indent=1, default=str))
    print(json.dumps({"items": len(meta["indices"]), "warnings": len(meta["warnings"])}))


def lerobot_python() -> Path:
    """The LeRobot venv's interpreter: ``$RLDS_HUB_LEROBOT_PYTHON`` or the repository's venv."""
    configured = os.environ.get(PYTHON_VARIABLE)
    python = (
        Path(configured)
        if configured
        else Path(__file__).resolve().parents[2] / ".venv-lerobot" / "bin" / "python"
    )
    if not python.exists():
        raise FileNotFoundError(
            f"LeRobot's interpreter {python} does not exist (from {PYTHON_VARIABLE} or the "
            "repository's .venv-lerobot): run make .venv-lerobot/.stamp, or point "
            f"{PYTHON_VARIABLE} at a Python with lerobot 0.4.4 installed"
        )
    return python


def run_peer(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """Run this file under LeRobot's interpreter; raise with its stderr tail if it fails."""
    command = [str(lerobot_python()), str(Path(__file__).resolve()), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"LeRobot peer {' '.join(args[:1])} failed (exit {done.returncode}):\n"
            + done.stderr[-4000:]
        )
    return done


def write_dataset(root: str | Path, **options: Any) -> Path:
    """Write a dataset with LeRobot's writer; options are ``write``'s flags (``camera_dtype``...)."""
    flags: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value not in (False, None):
            flags += [flag, str(value)]
    run_peer("write", "--root", str(root), *flags)
    return Path(root)


def read_dataset(
    root: str | Path,
    out: str | Path,
    *,
    indices: list[int] | None = None,
    video_backend: str | None = None,
    delta_timestamps: dict[str, list[float]] | None = None,
    repo_id: str = "rlds_hub/peer",
) -> tuple[dict[int, dict[str, np.ndarray]], dict[str, Any]]:
    """LeRobotDataset(repo_id, root)[i] for the given items (all by default) and the read's meta.

    Returns ``({i: {key: array}}, meta)``; the task string of item ``i`` is in its dict too.
    """
    flags = ["--root", str(root), "--out", str(out), "--repo-id", repo_id]
    if indices is not None:
        flags += ["--indices", ",".join(str(i) for i in indices)]
    if video_backend:
        flags += ["--video-backend", video_backend]
    if delta_timestamps:
        flags += ["--delta-timestamps", json.dumps(delta_timestamps)]
    run_peer("read", *flags)
    meta = json.loads(Path(str(out) + ".json").read_text())
    items: dict[int, dict[str, Any]] = {int(i): {} for i in meta["indices"]}
    with np.load(out) as arrays:
        for name in arrays.files:
            index, key = name.split("/", 1)
            items[int(index)][key] = arrays[name]
    for index, strings in meta["strings"].items():
        items[int(index)].update(strings)
    return items, meta


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    w = commands.add_parser("write", help="write a dataset with LeRobot's own writer")
    w.add_argument("--root", required=True, help="dataset directory (must not exist)")
    w.add_argument("--repo-id", default="rlds_hub/peer")
    w.add_argument("--camera-dtype", choices=("video", "image"), default="video")
    w.add_argument("--episodes", type=int, default=3)
    w.add_argument("--steps", default="5", help="frames per episode: one number or one per episode")
    w.add_argument("--height", type=int, default=32)
    w.add_argument("--width", type=int, default=32)
    w.add_argument("--state-dim", type=int, default=4)
    w.add_argument("--action-dim", type=int, default=3)
    w.add_argument("--fps", type=int, default=10)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--vcodec", default="libsvtav1")
    w.add_argument("--robot-type", default="peer_arm")
    w.add_argument("--rewards", action="store_true", help="add next.reward and next.done")
    w.set_defaults(run=write)
    r = commands.add_parser("read", help="dump LeRobotDataset(repo_id, root)[i] to an .npz")
    r.add_argument("--root", required=True)
    r.add_argument("--repo-id", default="rlds_hub/peer")
    r.add_argument("--out", required=True, help="the .npz to write (+ <out>.json)")
    r.add_argument("--indices", default="", help="comma-separated items (default: all)")
    r.add_argument("--delta-timestamps", default="", help="JSON {key: [seconds, ...]}")
    r.add_argument("--video-backend", default=None, help="torchcodec (default) or pyav")
    r.set_defaults(run=read)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run one command."""
    args = _parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
