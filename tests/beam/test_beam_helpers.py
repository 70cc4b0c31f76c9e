"""Shared helpers of the Beam tests (no tests here): small datasets recorded with rlds_hub's
recorder, envlogger logs written with envlogger's own Riegeli backend, the fast runner flags,
and output comparisons."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from dm_env import specs

from rlds_hub.recorders import Recorder
from rlds_hub.testing import RandomSpecEnv

# One in-process worker: the pipelines' logic without process start-up (the default
# multi-processing runner and the DaskRunner are tested in their own tests).
FAST = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
MULTI = [
    "--runner=DirectRunner",
    "--direct_running_mode=multi_processing",
    "--direct_num_workers=2",
]

NESTED_SPEC = {
    "position": specs.Array((3,), np.float64, "position"),
    "camera": specs.Array((6, 5, 3), np.uint8, "camera"),
    "count": specs.Array((), np.int32, "count"),
    "flags": specs.Array((2,), np.bool_, "flags"),
}


def step_metadata(timestep: Any, action: Any, env: Any) -> dict[str, Any]:
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


def record(
    path: str | os.PathLike,
    *,
    episodes: int = 6,
    lengths=(4, 7, 2, 5),
    terminate=(True, False),
    per_shard: int = 2,
    seed: int = 0,
    file_format: str = "tfrecord",
    metadata: bool = True,
) -> RandomSpecEnv:
    """Records ``episodes`` random-bit episodes with nested observations into ``path``;
    returns the environment (whose log holds every value produced)."""
    env = RandomSpecEnv(NESTED_SPEC, episode_lengths=lengths, terminate=terminate, seed=seed)
    kwargs = {}
    if metadata:
        kwargs = {"step_fn": step_metadata, "episode_fn": EpisodeInfo()}
    with Recorder(
        env, path, max_episodes_per_shard=per_shard, file_format=file_format, **kwargs
    ) as recorder:
        for _ in range(episodes):
            timestep = recorder.reset()
            while not timestep.last():
                timestep = recorder.step(np.full(2, 0.25, np.float32))
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
    return json.loads((Path(path) / "metadata.json").read_text())


def no_staging_left(parent: str | os.PathLike) -> bool:
    return not [p for p in Path(parent).iterdir() if p.name.startswith(".tmp-")]
