"""The service tests' datasets: point_mass recorded with its expert (two splits, episode
metadata, saved statistics), image frames (:class:`~rlds_hub.testing.envs.FramesEnv`) and an
Open X-Embodiment-style dataset written with TFDS. Made once per process
(:func:`dataset_root`); :func:`copy_root` gives a writable copy."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import dm_env
import numpy as np

from rlds_hub.testing.envs import FramesEnv
from rlds_hub.testing.oxe import oxe_episode, write_oxe_dataset
from rlds_hub.testing.recording import record


class _EpisodeInfo:
    """An ``episode_fn``: operator, score and success from the episode's number (counted
    over every recording it is given to)."""

    def __init__(self) -> None:
        self.episodes = 0

    def __call__(self, timestep: dm_env.TimeStep, action: object, env: object) -> dict:
        if timestep.first():
            self.episodes += 1
        count = self.episodes - 1
        return {
            "operator": "alice" if count % 2 else "bob",
            "score": np.float64(count * 0.5),
            "success": np.bool_(count % 3 == 0),
        }


def record_point_mass(path: Path, *, episodes: int = 10, steps: int = 30) -> Path:
    """dm_control point_mass with its expert, episodes cut at ``steps`` steps: two splits,
    episode metadata (operator, score, success), statistics saved with the dataset."""
    from rlds_hub.inspection import save_statistics, statistics

    episode_fn = _EpisodeInfo()
    for split, count in (("train", episodes), ("test", max(2, episodes // 4))):
        record(
            "dm_control/point_mass-easy",
            path,
            episodes=count,
            seed=1,
            policy="expert",
            max_steps=steps,
            split=split,
            max_episodes_per_shard=4,
            episode_fn=episode_fn,
            metadata={"team": "robotics", "purpose": "service tests"},
            allow_env_change=True,
        )
    save_statistics(
        path, [statistics(path, "train"), statistics(path, "test")], computed_by="tests"
    )
    return path


def record_frames(path: Path) -> Path:
    """The five episodes of :class:`FramesEnv`, two per shard."""
    env = FramesEnv()
    record(
        env,
        path,
        episodes=len(env.lengths),
        max_episodes_per_shard=2,
        env_name="tests/frames",
        policy_name="zeros",
    )
    return path


def write_oxe(directory: Path) -> Path:
    rng = np.random.default_rng(0)
    episodes = [oxe_episode(i, 3 + i % 4, rng, image_size=16) for i in range(6)]
    return Path(write_oxe_dataset(str(directory), episodes, name="oxe_like", shards=2))


@functools.cache
def _datasets() -> Path:
    """A root with the three test datasets (made once per session; treat as read-only)."""
    root = Path(tempfile.mkdtemp(prefix="rlds_hub_server_data_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    record_point_mass(root / "point_mass")
    record_frames(root / "frames")
    write_oxe(root / "oxe")
    return root


def dataset_root() -> Path:
    """The root holding ``point_mass``, ``frames`` and ``oxe`` (read-only: copy to change)."""
    return _datasets()


def copy_root(target: Path) -> Path:
    """A writable copy of the test root (for tests that change, corrupt or delete data)."""
    shutil.copytree(
        _datasets(),
        target,
        symlinks=True,
        ignore=shutil.ignore_patterns("*.sqlite3*", ".rlds_hub.lock"),
    )
    return target
