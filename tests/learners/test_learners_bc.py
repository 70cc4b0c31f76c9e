"""BC learns: its loss falls below a bound and its policy beats random on point_mass; the
losses are the textbook ones; discrete actions and every kind of input feed train."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlds_hub.learners import inputs
from rlds_hub.learners.bc import losses
from rlds_hub.learners.bc.config import BCConfig
from rlds_hub.learners.bc.learning import BCLearner
from rlds_hub.learners.normalization import Normalizer
from rlds_hub.learners.run import train
from rlds_hub.learners.task import TaskSpec
from rlds_hub.learners.testing import record_episodes

ENV = "dm_control/point_mass-easy"


@pytest.fixture(scope="module")
def point_mass(tmp_path_factory):
    return record_episodes(tmp_path_factory.mktemp("bc") / "pm", ENV, episodes=5, seed=0)


@pytest.mark.slow
def test_bc_loss_falls_and_policy_beats_random(point_mass, tmp_path):
    config = {"num_steps": 2000, "eval_every": 2000, "eval_episodes": 2, "log_every": 500}
    result = train(
        "bc",
        dataset=point_mass,
        env=ENV,
        out=tmp_path / "run",
        config=config,
        progress=False,
        echo=lambda line: None,
    )
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    losses_seen = [r["loss"] for r in records if r["kind"] == "train"]
    assert losses_seen[-1] < 0.005 and losses_seen[-1] < losses_seen[0] / 5, losses_seen
    final = result.evaluations[-1]
    assert final["return"] > result.references["random"] + 100, (final, result.references)
    assert final["normalized_return"] > 0.5, final


@pytest.mark.slow
def test_losses_match_their_definitions():
    predicted = jnp.array([[0.5, -0.5], [0.0, 1.0]])
    target = jnp.array([[0.0, 0.0], [0.0, 0.0]])
    assert float(losses.mse(predicted, target)) == pytest.approx((0.25 + 0.25 + 0 + 1) / 4)
    logits = jnp.array([[2.0, 0.0, -1.0]])
    expected = -(2.0 - np.log(np.exp(2.0) + 1 + np.exp(-1.0)))
    assert float(losses.cross_entropy(logits, jnp.array([0]))) == pytest.approx(expected, 1e-6)
    # tanh-Gaussian: density of a = tanh(u) with u ~ N(0, 1) at u = 0.3.
    u = 0.3
    a = np.tanh(u)
    log_density = -0.5 * u * u - 0.5 * np.log(2 * np.pi) - np.log(1 - a * a)
    nll = losses.tanh_gaussian_nll(jnp.zeros((1, 1)), jnp.zeros((1, 1)), jnp.full((1, 1), a))
    assert float(nll) == pytest.approx(-log_density, rel=1e-4)


def _discrete_task(num_values=3):
    observation = {"kind": "array", "shape": [2], "dtype": "float32", "name": "observation"}
    action = {"kind": "discrete", "num_values": num_values, "dtype": "int64", "name": "action"}
    return TaskSpec.from_specs(observation, action, env_name="toy")


@pytest.mark.slow
def test_discrete_bc_learns_a_labelling_with_cross_entropy():
    task = _discrete_task()
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(4096, 2)).astype(np.float32)
    labels = (obs[:, 0] > 0).astype(np.int32) + (obs[:, 1] > 1).astype(np.int32)
    config = BCConfig(hidden_sizes=(64, 64), learning_rate=1e-3, steps_per_call=50)
    learner = BCLearner(
        task, config, Normalizer.from_arrays(obs), {"observation": obs, "action": labels}, seed=0
    )
    for _ in range(12):
        learner.step()
    predicted = learner.act(obs)
    assert predicted.dtype.kind == "i"
    assert np.mean(predicted == labels) > 0.93
    action = task.env_action(predicted[0])
    assert action.dtype == np.int64 and action.shape == ()


@pytest.mark.slow
def test_bc_trains_from_a_loader_and_from_tf_data_with_any_batch_size(point_mass):
    from rlds_hub.data import transitions
    from rlds_hub.inspection import split_statistics
    from rlds_hub.storage import open_dataset

    dataset = open_dataset(point_mass)
    stats = split_statistics(dataset)
    task = TaskSpec.from_dataset(dataset, stats)
    normalizer = Normalizer.from_statistics(task, stats)
    config = BCConfig(batch_size=64, steps_per_call=10, hidden_sizes=(32,))
    # 100-transition batches re-cut into 64s: 5000 transitions fill 78 batches; 7 calls of
    # 10 use 70, and the rest (520 transitions) is counted as left over, not dropped.
    loader = transitions(point_mass, batch_size=100, num_epochs=1, seed=3, episodes=range(5))
    learner = BCLearner(task, config, normalizer, loader, seed=0)
    calls = 0
    with pytest.raises(StopIteration):
        while True:
            learner.step()
            calls += 1
    assert calls == 7 and learner.steps == 70
    assert learner.feed.leftover == 5000 - 70 * 64
    learner.close()
    tf = pytest.importorskip("tensorflow")
    tf_loader = transitions(point_mass, batch_size=128, num_epochs=None, seed=1).as_tf_dataset()
    assert isinstance(tf_loader, tf.data.Dataset)
    learner = BCLearner(task, config, normalizer, tf_loader, seed=0)
    first = float(learner.step()["loss"])
    for _ in range(20):
        last = float(learner.step()["loss"])
    assert last < first
    learner.close()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:InMemorySampler. JAX.s x64 mode is off")
def test_in_memory_sampler_feeds_bc(point_mass):
    from rlds_hub.data import InMemorySampler
    from rlds_hub.inspection import split_statistics
    from rlds_hub.storage import open_dataset

    dataset = open_dataset(point_mass)
    stats = split_statistics(dataset)
    task = TaskSpec.from_dataset(dataset, stats)
    sampler = InMemorySampler.from_dataset(point_mass)
    config = BCConfig(steps_per_call=20, hidden_sizes=(64,))
    learner = BCLearner(task, config, Normalizer.from_statistics(task, stats), sampler)
    batch = learner.feed.next(jax.random.PRNGKey(0))
    assert batch["observation"].shape == (20, 256, 4) and batch["action"].shape == (20, 256, 2)
    losses_seen = [float(learner.step()["loss"]) for _ in range(10)]
    assert losses_seen[-1] < losses_seen[0]


def test_rebatcher_recuts_without_losing_rows():
    rows = [
        {"x": np.arange(start, start + size)} for start, size in ((0, 5), (5, 1), (6, 7), (13, 2))
    ]
    rebatcher = inputs.Rebatcher(iter(rows), 4)
    batches = list(rebatcher)
    assert [b["x"].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert rebatcher.leftover == 3
