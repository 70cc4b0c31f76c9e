"""A recording that produced no episode does not block the next one: a dataset with zero
episodes takes the next recording's environment, specs, name and file format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dm_env import specs

from rlds_hub.storage.dataset import open_dataset
from rlds_hub.testing import FailingEnv, RandomSpecEnv, record


def _record(env, path, episodes=2, **kwargs):
    record(env, path, episodes=episodes, **kwargs)


def test_a_failed_recording_does_not_block_the_next_recording(tmp_path):
    path = tmp_path / "demos"
    broken = FailingEnv(
        RandomSpecEnv({"pixels": specs.Array((4, 4, 3), np.uint8)}),
        at_reset=0,
        error=RuntimeError("the simulator did not start"),
    )
    with pytest.raises(RuntimeError, match="did not start"):
        _record(broken, path, env_name="dm_control/cartpole-swingup", file_format="array_record")
    assert open_dataset(path).num_episodes == 0
    good = RandomSpecEnv({"position": specs.Array((3,), np.float64)}, episode_lengths=(3,))
    _record(good, path, env_name="demo/reach")  # another env, specs and file format
    dataset = open_dataset(path)
    assert dataset.num_episodes == 2 and dataset.file_format == "tfrecord"
    metadata = json.loads((path / "metadata.json").read_text())
    assert [s["env_name"] for s in metadata["sessions"]] == ["demo/reach"]
    assert metadata["env_name"] == "demo/reach"
    assert "position" in json.dumps(metadata["specs"]) and "pixels" not in json.dumps(metadata)
    assert not [p for p in path.iterdir() if p.name.endswith(".array_record-00000")]


def test_a_dataset_with_episodes_still_refuses_another_environment(tmp_path):
    path = tmp_path / "demos"
    env = RandomSpecEnv({"position": specs.Array((3,), np.float64)}, episode_lengths=(3,))
    _record(env, path, episodes=1, env_name="demo/reach")
    other = RandomSpecEnv({"position": specs.Array((3,), np.float64)}, episode_lengths=(3,))
    with pytest.raises(ValueError, match="holds episodes of demo/reach"):
        _record(other, path, episodes=1, env_name="demo/push")
    assert open_dataset(path).num_episodes == 1
