"""Helpers of the Beam jobs' tests: the fast runner flags, small datasets of random nested
values with step and episode metadata (:func:`record_nested`), and output comparisons."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rlds_hub.testing.envs import nested_env
from rlds_hub.testing.random_spec import RandomSpecEnv
from rlds_hub.testing.recording import record

# One in-process worker: the pipelines' logic without process start-up (the default
# multi-processing runner and the DaskRunner are tested in their own tests).
FAST = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
MULTI = [
    "--runner=DirectRunner",
    "--direct_running_mode=multi_processing",
    "--direct_num_workers=2",
]


def step_metadata(timestep: Any, action: Any, env: Any) -> dict[str, Any]:
    """A ``step_fn``: the action's sum as ``energy`` (0 at a reset)."""
    return {"energy": np.float32(0.0 if action is None else float(np.sum(action)))}


class EpisodeInfo:
    """An episode_fn giving each episode an id, an operator and a score."""

    def __init__(self) -> None:
        self.episodes = 0

    def __call__(self, timestep: Any, action: Any, env: Any) -> dict[str, Any]:
        if timestep.first():
            self.episodes += 1
        return {
            "episode_id": np.int64(self.episodes - 1),
            "operator": "alice" if self.episodes % 2 else "bob",
            "score": np.float64(self.episodes * 0.5),
        }


def record_nested(
    path: str | os.PathLike,
    *,
    episodes: int = 6,
    lengths: tuple[int, ...] = (4, 7, 2, 5),
    terminate: tuple[bool, ...] = (True, False),
    per_shard: int = 2,
    seed: int = 0,
    file_format: str = "tfrecord",
    metadata: bool = True,
) -> RandomSpecEnv:
    """Records ``episodes`` random-bit episodes with nested observations
    (:func:`~rlds_hub.testing.envs.nested_env`) into ``path``, with step metadata
    (``energy``) and episode metadata (``episode_id``, ``operator``, ``score``) unless
    ``metadata`` is false; returns the environment (whose log holds every value produced)."""
    options: dict[str, Any] = {}
    if metadata:
        options = {"step_fn": step_metadata, "episode_fn": EpisodeInfo()}
    env = nested_env(lengths, terminate, seed)
    record(
        env,
        path,
        episodes=episodes,
        policy=np.full(2, 0.25, np.float32),
        max_episodes_per_shard=per_shard,
        file_format=file_format,
        **options,
    )
    return env


def dataset_files(path: str | os.PathLike) -> dict[str, bytes]:
    """Every file of a dataset directory except metadata.json (which holds the time)."""
    root = Path(path)
    return {
        p.name: p.read_bytes()
        for p in sorted(root.iterdir())
        if p.is_file() and p.name != "metadata.json"
    }


def metadata(path: str | os.PathLike) -> dict[str, Any]:
    """A dataset's metadata.json."""
    return json.loads((Path(path) / "metadata.json").read_text())


def no_staging_left(parent: str | os.PathLike) -> bool:
    """Whether ``parent`` holds no job's staging directory (``.tmp-*``)."""
    return not [p for p in Path(parent).iterdir() if p.name.startswith(".tmp-")]
