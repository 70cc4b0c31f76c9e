"""Datasets load with plain TFDS in a process that never imports rlds_hub."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from dm_env import specs

from rlds_hub.testing import RandomSpecEnv, assert_bit_equal, random_value, record

READER = textwrap.dedent(
    """
    import pickle, sys
    import tensorflow_datasets as tfds

    path, out = sys.argv[1], sys.argv[2]
    builder = tfds.builder_from_directory(path)
    episodes = []
    for episode in builder.as_dataset(split="train", shuffle_files=False):
        steps = list(episode["steps"].as_numpy_iterator())
        meta = {k: v.numpy() for k, v in episode.items() if k != "steps"}
        episodes.append((steps, meta))
    leaked = sorted(m for m in sys.modules if m.startswith("rlds_hub"))
    with open(out, "wb") as f:
        pickle.dump({"episodes": episodes, "leaked": leaked,
                     "metadata": dict(builder.info.metadata)}, f)
    """
)


@pytest.mark.slow
def test_recorded_dataset_loads_in_a_process_without_rlds_hub(tmp_path):
    observation_spec = {
        "joints": specs.Array((4,), np.float64),
        "camera": specs.Array((12, 10, 3), np.uint8),
        "instruction": specs.StringArray((), string_type=str),
        "contacts": (specs.Array((2,), np.bool_), specs.Array((), np.int16)),
    }
    env = RandomSpecEnv(
        observation_spec,
        specs.BoundedArray((3,), np.float32, -1, 1),
        episode_lengths=[4, 2],
        terminate=[True, False],
        seed=11,
    )
    rng = np.random.default_rng(0)
    record(
        env,
        tmp_path / "ds",
        episodes=3,
        policy=lambda timestep: random_value(env.action_spec(), rng),
        episode_fn=lambda ts, a, e: {"operator": "bob"},
        max_episodes_per_shard=2,
        policy_name="random",
    )
    out = tmp_path / "read.pkl"
    script = tmp_path / "reader.py"
    script.write_text(READER)
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ds"), str(out)],
        check=True,
        cwd=tmp_path,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    result = pickle.loads(out.read_bytes())
    assert result["leaked"] == []
    assert result["metadata"]["policy"] == "random"
    assert len(result["episodes"]) == 3
    for (steps, meta), logged, actions in zip(
        result["episodes"], env.episodes, env.actions, strict=True
    ):
        assert meta["operator"] == b"bob"
        assert len(steps) == len(logged)
        for t, step in enumerate(steps):
            assert_bit_equal(logged[t].observation, step["observation"])
            if t < len(steps) - 1:
                assert_bit_equal(actions[t], step["action"])
                assert_bit_equal(logged[t + 1].reward, step["reward"])
