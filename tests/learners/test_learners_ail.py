"""AIL: rewards, discriminator loss with gradient penalty, SAC losses, absorbing states,
and a short online run that records its experience as RLDS and improves the discriminator."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlds_hub.learners.ail import losses, replay
from rlds_hub.learners.ail.config import AILConfig
from rlds_hub.learners.ail.learning import AILLearner
from rlds_hub.learners.normalization import Normalizer


def test_imitation_rewards_follow_their_formulas():
    logits = jnp.array([-2.0, 0.0, 1.5])
    d = jax.nn.sigmoid(logits)
    np.testing.assert_allclose(losses.imitation_reward("gail", logits), -jnp.log(1 - d), rtol=1e-5)
    np.testing.assert_allclose(
        losses.imitation_reward("airl", logits), jnp.log(d) - jnp.log(1 - d), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        losses.imitation_reward("fairl", logits), -logits * jnp.exp(logits), rtol=1e-5
    )
    with pytest.raises(ValueError, match="unknown imitation reward"):
        losses.imitation_reward("wail", logits)


def test_gradient_penalty_measures_the_input_gradient_norm():
    # A linear discriminator h(x) = w.x has |grad| = |w| everywhere: the penalty is exact.
    w = jnp.array([3.0, 4.0])
    expert, agent = jnp.ones((8, 2)), -jnp.ones((8, 2))
    loss, metrics = losses.discriminator_loss(
        lambda x: x @ w,
        expert,
        agent,
        jax.random.PRNGKey(0),
        gradient_penalty=10.0,
        gradient_penalty_target=1.0,
    )
    assert float(metrics["gradient_penalty"]) == pytest.approx((5.0 - 1.0) ** 2, rel=1e-5)
    bce = float(jax.nn.softplus(-7.0) + jax.nn.softplus(-7.0))
    assert float(metrics["discriminator_loss"]) == pytest.approx(bce, rel=1e-4)
    assert float(loss) == pytest.approx(bce + 160.0, rel=1e-4)
    assert float(metrics["discriminator_accuracy"]) == 1.0


def test_sac_losses():
    q = jnp.array([[1.0, 2.0], [1.5, 1.0]])
    target_q = jnp.array([[2.0, 0.0], [1.0, 1.0]])
    loss = losses.critic_loss(
        q,
        jnp.array([1.0, 0.5]),
        jnp.array([1.0, 0.0]),
        target_q,
        jnp.array([0.0, 0.0]),
        jnp.float32(0.1),
        0.5,
    )
    targets = np.array([1.0 + 0.5 * 1.0, 0.5])
    expected = np.mean(((np.array([[1.0, 2.0], [1.5, 1.0]]) - targets) ** 2).sum(axis=0))
    assert float(loss) == pytest.approx(expected)
    actor = losses.actor_loss(q, jnp.array([-1.0, 1.0]), jnp.float32(0.5))
    assert float(actor) == pytest.approx(np.mean([0.5 * -1.0 - 1.0, 0.5 * 1.0 - 1.0]))


def test_absorbing_states_only_after_true_terminations():
    rows = {
        "observation": np.array([[1.0], [2.0], [3.0]]),
        "action": np.zeros((3, 1)),
        "next_observation": np.array([[2.0], [3.0], [4.0]]),
    }
    # transition 1 ends a terminated episode; transition 2 ends a truncated one (not terminal)
    terminal = np.array([False, True, False])
    out = replay.with_absorbing(rows, terminal, absorbing=True)
    assert len(out["observation"]) == 4  # + one absorbing -> absorbing transition
    np.testing.assert_array_equal(out["next_absorbing"], [0, 1, 0, 1])
    np.testing.assert_array_equal(out["absorbing"], [0, 0, 0, 1])
    np.testing.assert_array_equal(out["discount"], [1, 1, 1, 1])  # everything bootstraps
    assert out["next_observation"][2, 0] == 4.0  # the truncation keeps its next state
    plain = replay.with_absorbing(rows, terminal, absorbing=False)
    np.testing.assert_array_equal(plain["discount"], [1, 0, 1])
    buffer = replay.ReplayBuffer(3, 1, 1)
    for i in range(5):
        buffer.add(
            np.array([float(i)]), np.zeros(1), np.array([i + 1.0]), terminal=False, absorbing=True
        )
    assert buffer.size == 3 and sorted(buffer.arrays["observation"][:, 0]) == [2.0, 3.0, 4.0]


@pytest.mark.slow
def test_discriminator_learns_to_separate_expert_from_agent(toy_task):
    task = toy_task
    config = AILConfig(
        actor_hidden_sizes=(32,),
        critic_hidden_sizes=(32,),
        discriminator_hidden_sizes=(32, 32),
        batch_size=64,
        spectral_norm=True,
        # 16 updates: faster than the default 1e-5, which is chosen for 50,000-step runs.
        discriminator_learning_rate=3e-4,
    )
    learner = AILLearner(task, config, Normalizer.identity(2), seed=0)
    rng = np.random.default_rng(0)

    def rows(action_sign):
        obs = rng.normal(size=(20, 64, 2)).astype(np.float32)
        return {
            "observation": obs,
            "absorbing": np.zeros((20, 64), np.float32),
            "action": (action_sign * np.abs(rng.normal(size=(20, 64, 1)))).astype(np.float32),
            "next_observation": obs,
            "next_absorbing": np.zeros((20, 64), np.float32),
            "discount": np.ones((20, 64), np.float32),
        }

    first = learner.step({"agent": rows(-1.0), "expert": rows(1.0)})
    for _ in range(15):
        last = learner.step({"agent": rows(-1.0), "expert": rows(1.0)})
    # The gradient penalty keeps the discriminator smooth, so actions near 0 (both sides)
    # stay ambiguous: accuracy plateaus near 0.87 here, up from chance.
    assert float(last["discriminator_accuracy"]) > 0.8
    assert float(last["discriminator_accuracy"]) > float(first["discriminator_accuracy"]) + 0.05
    assert float(last["discriminator_loss"]) < float(first["discriminator_loss"]) - 0.1
    assert "batch_stats" in learner.state.discriminator  # spectral norm's power iterations


@pytest.mark.slow
def test_short_online_run_records_experience_and_resumes(tmp_path, point_mass_demos):
    from rlds_hub.data import episode_table
    from rlds_hub.learners.run import train

    env = "dm_control/point_mass-easy"
    demos = point_mass_demos
    small = {
        "actor_hidden_sizes": [32],
        "critic_hidden_sizes": [32],
        "discriminator_hidden_sizes": [32],
        "initial_random_steps": 500,
        "eval_episodes": 1,
        "eval_every": 1000,
        "checkpoint_every": 1000,
        "log_every": 500,
        "batch_size": 64,
    }
    out = tmp_path / "run"
    train(
        "ail",
        dataset=demos,
        env=env,
        out=out,
        steps=2100,
        config=small,
        progress=False,
        echo=lambda line: None,
    )
    table = episode_table(str(out / "experience"))
    assert len(table) == 2 and all(r["num_transitions"] == 1000 for r in table)
    records = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    trained = [r for r in records if r["kind"] == "train" and "discriminator_accuracy" in r]
    assert trained and all(np.isfinite(r["critic_loss"]) for r in trained)
    # The last checkpoint waited for an episode boundary (2000 steps); resume from there.
    result = train(
        "ail",
        dataset=demos,
        env=env,
        out=out,
        steps=2600,
        config=small,
        resume=True,
        progress=False,
        echo=lambda line: None,
    )
    assert result.steps == 2600
    assert len(episode_table(str(out / "experience"))) == 2
