"""Data parallelism gives one device's results; the learners train with TensorFlow absent.

Both run in subprocesses: several CPU host devices must be requested before JAX starts
(``--xla_force_host_platform_device_count``), and blocking TensorFlow must happen before
anything imports it.
"""

import os
import subprocess
import sys

import pytest

PARALLEL = r"""
import jax, numpy as np
assert len(jax.devices()) == 2, jax.devices()
from rlds_hub.learners.parallel import DataParallel
from rlds_hub.learners.task import TaskSpec
from rlds_hub.learners.normalization import Normalizer
from rlds_hub.learners.bc.config import BCConfig
from rlds_hub.learners.bc.learning import BCLearner
from rlds_hub.learners.ail.config import AILConfig
from rlds_hub.learners.ail.learning import AILLearner
from rlds_hub.learners.poir.config import POIRConfig
from rlds_hub.learners.poir.learning import POIRLearner

task = TaskSpec.from_specs({"kind": "array", "shape": [3], "dtype": "float32", "name": "o"},
                           {"kind": "bounded", "shape": [2], "dtype": "float32",
                            "minimum": -1.0, "maximum": 1.0, "name": "a"})
rng = np.random.default_rng(0)
obs = rng.normal(size=(2000, 3)).astype(np.float32)
act = np.tanh(obs[:, :2] - obs[:, 2:]).astype(np.float32)
data = {"observation": obs, "action": act, "next_observation": obs + 0.1 * np.concatenate(
    [act, act[:, :1]], axis=1)}
norm = Normalizer.from_arrays(obs)
one, two = DataParallel(jax.devices()[:1]), DataParallel(jax.devices())

def close(a, b, what):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5,
                                   err_msg=what)

bc = {}
for name, parallel in (("one", one), ("two", two)):
    learner = BCLearner(task, BCConfig(hidden_sizes=(64, 64), steps_per_call=25), norm,
                        {"observation": obs, "action": act}, seed=1, parallel=parallel)
    for _ in range(4):
        learner.step()
    bc[name] = jax.device_get(learner.state.params)
    if name == "two":
        leaf = jax.tree_util.tree_leaves(learner.state.params)[0]
        assert len(leaf.sharding.device_set) == 2
close(bc["one"], bc["two"], "bc")
assert not np.allclose(jax.tree_util.tree_leaves(bc["one"])[0], 0)

config = AILConfig(actor_hidden_sizes=(32,), critic_hidden_sizes=(32,),
                   discriminator_hidden_sizes=(32,), batch_size=64)
def rows(k):
    r = np.random.default_rng(k)
    return {"observation": r.normal(size=(5, 64, 3)).astype(np.float32),
            "absorbing": (r.random((5, 64)) < 0.1).astype(np.float32),
            "action": r.uniform(-1, 1, (5, 64, 2)).astype(np.float32),
            "next_observation": r.normal(size=(5, 64, 3)).astype(np.float32),
            "next_absorbing": (r.random((5, 64)) < 0.1).astype(np.float32),
            "discount": np.ones((5, 64), np.float32)}
batch = {"agent": rows(1), "expert": rows(2)}
ail = {}
for name, parallel in (("one", one), ("two", two)):
    learner = AILLearner(task, config, norm, seed=2, parallel=parallel)
    for _ in range(3):
        learner.step(batch)
    ail[name] = jax.device_get(learner.state)
close(ail["one"], ail["two"], "ail")

poir = {}
episode = np.repeat(np.arange(4), 500)
for name, parallel in (("one", one), ("two", two)):
    cfg = POIRConfig(bc_hidden_sizes=(32,), dynamics_hidden_sizes=(32,), ensemble_size=2,
                     num_samples=8, push_fractions=(0.5,), batch_size=32, steps_per_call=10,
                     reference_states=256)
    learner = POIRLearner(task, cfg, norm, data, episode, seed=3, parallel=parallel)
    for _ in range(3):
        learner.step()
    poir[name] = jax.device_get((learner.state.policy, learner.state.dynamics))
close(poir["one"], poir["two"], "poir")
print("ok")
"""

BLOCKED = r"""
import sys
sys.modules["tensorflow"] = None
sys.modules["tensorflow_datasets"] = None
from rlds_hub.learners import load_policy, train
from rlds_hub.envs import make_env
path, out = sys.argv[1], sys.argv[2]
result = train("bc", dataset=path, env="dm_control/point_mass-easy", out=out, steps=200,
               config={"eval_episodes": 1, "eval_every": 200, "steps_per_call": 50},
               progress=False, echo=lambda line: None)
train("ail", dataset=path, env="dm_control/point_mass-easy", out=out + "-ail", steps=150,
      config={"eval_episodes": 0, "initial_random_steps": 100, "actor_hidden_sizes": [16],
              "critic_hidden_sizes": [16], "discriminator_hidden_sizes": [16]},
      progress=False, echo=lambda line: None)
train("poir", dataset=path, env="dm_control/point_mass-easy", out=out + "-poir", steps=100,
      config={"eval_episodes": 0, "steps_per_call": 50, "bc_hidden_sizes": [16],
              "dynamics_hidden_sizes": [16], "ensemble_size": 2, "num_samples": 8,
              "push_fractions": [0.5], "horizon": 5, "reference_states": 256,
              "online_steps": 0},
      progress=False, echo=lambda line: None)
env = make_env("dm_control/point_mass-easy", seed=4)
for run in (out, out + "-ail", out + "-poir"):
    policy = load_policy(run)
    policy.reset()
    policy(env.reset())
loaded = {m.split(".")[0] for m, mod in sys.modules.items() if mod is not None}
assert "tensorflow" not in loaded and "tensorflow_datasets" not in loaded
print("ok", result.steps)
"""


def _run(code, *args, env=None):
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout.split()


@pytest.mark.slow
def test_two_devices_compute_what_one_does():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    assert _run(PARALLEL, env=env)[-1] == "ok"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_learners_train_and_act_with_tensorflow_blocked(tmp_path, point_mass_demos):
    path = point_mass_demos
    assert _run(BLOCKED, path, tmp_path / "run")[-2:] == ["ok", "200"]
