"""With TensorFlow blocked, a recorded dataset is read as episodes and batches of NumPy,
its statistics and episode table computed, and the in-memory JAX sampler built and sampled:
what a machine with JAX and no TensorFlow (the accelerator hosts) needs."""

import subprocess
import sys

import pytest

from rlds_hub.envs import make_env, make_policy
from rlds_hub.recorders import Recorder

pytest.importorskip("jax")

BLOCKED = """
import sys
sys.modules["tensorflow"] = None          # any import of TensorFlow now fails
sys.modules["tensorflow_datasets"] = None
import numpy as np
import jax
from rlds_hub import data, inspection, storage

path = sys.argv[1]
dataset = storage.open_dataset(path)
episodes = list(storage.iter_episodes(storage.select(dataset, "train[:2]")))
assert len(episodes) == 2 and episodes[0]["steps"]["observation"]["position"].dtype == np.float64
batches = list(data.transitions(path, batch_size=64, seed=1))
total = sum(len(b["reward"]) for b in batches)
table = data.episode_table(path)
assert total == sum(r["num_transitions"] for r in table), (total, table)
stats = inspection.statistics(path)
assert stats["num_transitions"] == total
windows = next(iter(data.windows(path, size=8, batch_size=4)))
assert windows["mask"].shape == (4, 8)
sampler = data.InMemorySampler.from_dataset(path)
batch = sampler.sample(jax.random.PRNGKey(0), 32)
assert batch["observation"]["position"].shape == (32, 2)
many = sampler.sample_many(jax.random.PRNGKey(1), 3, 16)
assert many["reward"].shape == (3, 16)
for batch in data.transitions(path, batch_size=128).as_jax_iterator():
    pass
assert "tensorflow" not in {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
print("ok", total)
"""


@pytest.mark.slow
def test_read_batch_sample_with_tensorflow_blocked(tmp_path):
    env = make_env("dm_control/point_mass-easy", seed=0)
    policy = make_policy("expert", "dm_control/point_mass-easy", env, seed=0)
    with Recorder(env, tmp_path / "pm", env_name="dm_control/point_mass-easy") as recorder:
        for _ in range(3):
            timestep = recorder.reset()
            while not timestep.last():
                timestep = recorder.step(policy(timestep))
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", BLOCKED, str(tmp_path / "pm")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["ok", str(3 * 1000)]


def test_recorder_imports_without_tensorflow():
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['tensorflow_datasets'] = None\n"
        "from rlds_hub.recorders import Recorder\nimport rlds_hub.recorders.recorder\n"
        "import rlds_hub.inspection, rlds_hub.storage.writer\nprint('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
