"""The LeRobot v3.0 dataset layout that the RLDS -> LeRobot export writes: file paths, the
file-size caps, ``meta/info.json``, and how RLDS step fields map to LeRobot features.

A v3.0 dataset holds ``data/chunk-CCC/file-FFF.parquet`` (one row per frame, episodes
concatenated), ``videos/<camera>/chunk-CCC/file-FFF.mp4`` (episodes concatenated),
``meta/episodes/chunk-CCC/file-FFF.parquet`` (one row per episode: where its rows and video
frames are, and its statistics), ``meta/tasks.parquet``, ``meta/stats.json`` and
``meta/info.json``; at most ``CHUNK_SIZE`` files per chunk directory. rlds_hub adds
``meta/rlds_hub.json`` (ignored by LeRobot): each column's RLDS field, dtype and shape, so
that the way back restores them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlds_hub.format.plan import Leaf, LeafKind, Plan

CODEBASE_VERSION = "v3.0"
CHUNK_SIZE = 1000  # files per chunk directory
DATA_FILE_MB = 100  # cap of a data file (uncompressed Parquet size, as LeRobot measures it)
VIDEO_FILE_MB = 200  # cap of a video file
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
RLDS_PATH = "meta/rlds_hub.json"  # rlds_hub's own: each column's RLDS origin
VIDEO_CODECS = ("av1", "h264", "none")
# LeRobot's own per-frame columns, in its order.
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
INDEX_FEATURES = {
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}
_RENAMED = {"reward": "next.reward"}
# A step string field with one of these names becomes the LeRobot task of its frames.
TASK_FIELDS = ("language_instruction", "natural_language_instruction", "instruction", "task")


class UnsupportedFeatureError(ValueError):
    """RLDS features with no LeRobot equivalent (the message lists them)."""


@dataclasses.dataclass(frozen=True)
class Column:
    """One LeRobot feature made of one RLDS step leaf."""

    key: str  # the LeRobot feature name ("observation.images.front")
    leaf: Leaf
    camera: bool  # an RGB camera: "image" (PNG in the parquet) or "video" (MP4)

    @property
    def shape(self) -> tuple[int, ...]:
        """The LeRobot shape: scalars become ``(1,)``."""
        return tuple(self.leaf.shape) or (1,)


@dataclasses.dataclass(frozen=True)
class FeatureMap:
    """How a dataset's step fields become LeRobot features."""

    columns: tuple[Column, ...]
    task_leaf: Leaf | None  # a per-step language string: the frames' task
    skipped: dict[str, str]  # unsupported leaf -> why

    @property
    def cameras(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.camera)


def is_camera(leaf: Leaf) -> bool:
    """An RGB uint8 ``H x W x 3`` array (PNG / JPEG frames or raw pixels): a LeRobot camera."""
    return (
        leaf.kind != LeafKind.STRING
        and leaf.dtype == np.uint8
        and len(leaf.shape) == 3
        and leaf.shape[-1] == 3
    )


def _unsupported(leaf: Leaf) -> str | None:
    if is_camera(leaf):
        return None
    if leaf.dtype.kind == "c":
        return "complex numbers have no LeRobot dtype"
    if leaf.kind == LeafKind.STRING:
        return "strings per step have no LeRobot dtype (only the task is a string)"
    if leaf.kind == LeafKind.IMAGE and not is_camera(leaf):
        return f"LeRobot cameras are uint8 H x W x 3; this image is {leaf.dtype} {leaf.shape}"
    if len(leaf.shape) > 1:
        return f"arrays of {len(leaf.shape)} dimensions are not LeRobot vector features"
    return None


def _key(name: str, camera: bool, single_state: bool) -> str:
    parts = name.split("/")
    if parts[0] == "observation" and camera:
        return "observation.images." + ".".join(parts[1:] or ["image"])
    if parts[0] == "observation" and single_state:
        return "observation.state"
    key = _RENAMED.get(name, ".".join(parts))
    return f"rlds.{key}" if key in INDEX_FEATURES or key == "next.done" else key


def feature_map(plan: Plan, *, skip_unsupported: bool = False) -> FeatureMap:
    """The LeRobot features of ``plan``'s step leaves.

    Cameras become ``observation.images.<name>``; the observation's only other leaf (if it
    has one) ``observation.state``, else ``observation.<name>`` each; ``reward`` becomes
    ``next.reward``; every other field keeps its name with ``.`` for ``/``.

    Raises:
      UnsupportedFeatureError: leaves with no LeRobot equivalent, unless ``skip_unsupported``.
    """
    leaves = list(plan.step_leaves)
    task_leaf = next(
        (
            leaf
            for leaf in leaves
            if leaf.kind == LeafKind.STRING
            and not leaf.shape
            and leaf.name.split("/")[-1] in TASK_FIELDS
        ),
        None,
    )
    skipped = {
        leaf.name: why
        for leaf in leaves
        if leaf is not task_leaf and (why := _unsupported(leaf)) is not None
    }
    if skipped and not skip_unsupported:
        listed = "; ".join(f"{name}: {why}" for name, why in skipped.items())
        raise UnsupportedFeatureError(
            f"these step fields have no LeRobot equivalent: {listed}. Pass --skip-unsupported "
            "(skip_unsupported=True) to export without them (they are listed in export.json)"
        )
    kept = [leaf for leaf in leaves if leaf is not task_leaf and leaf.name not in skipped]
    state = [leaf for leaf in kept if leaf.field == "observation" and not is_camera(leaf)]
    columns = tuple(
        Column(_key(leaf.name, is_camera(leaf), len(state) == 1), leaf, is_camera(leaf))
        for leaf in kept
    )
    keys = [c.key for c in columns]
    if len(set(keys)) != len(keys):
        raise UnsupportedFeatureError(f"step fields map to the same LeRobot name: {keys}")
    return FeatureMap(columns, task_leaf, skipped)


def lerobot_features(
    features: FeatureMap, video_codec: str, fps: int, camera_info: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """``info.json``'s ``features``: every column, then LeRobot's index columns."""
    out: dict[str, dict[str, Any]] = {}
    for column in features.columns:
        if column.camera:
            height, width, channels = column.leaf.shape
            entry: dict[str, Any] = {
                "dtype": "image" if video_codec == "none" else "video",
                "shape": [height, width, channels],
                "names": ["height", "width", "channels"],
            }
            if video_codec != "none":
                entry["info"] = {
                    "video.height": height,
                    "video.width": width,
                    "video.codec": video_codec,
                    "video.pix_fmt": camera_info.get("pix_fmt", "yuv420p"),
                    "video.is_depth_map": False,
                    "video.fps": fps,
                    "video.channels": channels,
                    "has_audio": False,
                }
        else:
            dtype = column.leaf.dtype.name
            entry = {"dtype": dtype, "shape": list(column.shape), "names": None}
        out[column.key] = entry
    out["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    for key, dtype in INDEX_FEATURES.items():
        out[key] = {"dtype": dtype, "shape": [1], "names": None}
    return out


def info_json(
    *,
    features: dict[str, dict[str, Any]],
    fps: int,
    robot_type: str | None,
    total_episodes: int,
    total_frames: int,
    total_tasks: int,
    splits: Mapping[str, str],
    videos: bool,
    data_file_mb: float = DATA_FILE_MB,
    video_file_mb: float = VIDEO_FILE_MB,
) -> dict[str, Any]:
    """``meta/info.json`` as LeRobot 0.4's ``LeRobotDatasetMetadata`` reads it."""
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": total_episodes,
        "total_frames": total_frames,
        "total_tasks": total_tasks,
        "chunks_size": CHUNK_SIZE,
        "data_files_size_in_mb": data_file_mb,
        "video_files_size_in_mb": video_file_mb,
        "fps": fps,
        "splits": dict(splits),
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if videos else None,
        "features": features,
    }


def chunk_file(number: int) -> dict[str, int]:
    """The chunk and file index of the ``number``-th file of a kind (from 0)."""
    return {"chunk_index": number // CHUNK_SIZE, "file_index": number % CHUNK_SIZE}
