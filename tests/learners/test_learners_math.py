"""The learners' core math against hand-computed values: each test fails when the formula it
guards is broken (the mutants each one catches are listed in docs/learners.md, Protocol)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rlds_hub.learners.ail import losses, replay
from rlds_hub.learners.ail.config import AILConfig
from rlds_hub.learners.ail.learning import AILLearner
from rlds_hub.learners.ail.networks import states
from rlds_hub.learners.bc import losses as bc_losses
from rlds_hub.learners.normalization import Normalizer


def _target(q, rewards, discounts, next_q, next_log_probs, temperature, gamma):
    """The Bellman target implied by ``losses.critic_loss`` (its minimiser for each row)."""
    loss = lambda t: losses.critic_loss(  # noqa: E731
        jnp.stack([t, t]), rewards, discounts, next_q, next_log_probs, temperature, gamma
    )
    # For a loss sum_i (t_i - y_i)^2 the gradient at t = 0 is -2 y_i / B per member.
    grad = jax.grad(loss)(jnp.zeros_like(rewards))
    return -grad * rewards.shape[0] / 4.0


# rows: reward, discount (1 bootstrap, 0 termination), min next Q, next log-prob
REWARDS = jnp.array([1.0, 2.0, 0.5, -1.0])
DISCOUNTS = jnp.array([1.0, 0.0, 1.0, 1.0])
NEXT_Q = jnp.array([[3.0, 10.0, -2.0, 4.0], [5.0, 20.0, -1.0, 6.0]])  # min: 3, 10, -2, 4
NEXT_LOG_PROBS = jnp.array([0.5, 0.5, -1.0, 0.0])


@pytest.mark.parametrize(
    "gamma, expected",
    [
        # discount 0: the target is the reward alone, whatever the next state
        (0.0, [1.0, 2.0, 0.5, -1.0]),
        # discount 1: reward + (min next Q - alpha * log pi); a termination (row 1) stops there
        (1.0, [1.0 + 3.0 - 0.1 * 0.5, 2.0, 0.5 - 2.0 + 0.1, -1.0 + 4.0]),
        (0.9, [1.0 + 0.9 * (3.0 - 0.05), 2.0, 0.5 + 0.9 * (-2.0 + 0.1), -1.0 + 0.9 * 4.0]),
    ],
)
def test_soft_bellman_targets_by_hand(gamma, expected):
    target = _target(None, REWARDS, DISCOUNTS, NEXT_Q, NEXT_LOG_PROBS, jnp.float32(0.1), gamma)
    np.testing.assert_allclose(target, expected, rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_termination_does_not_absorbing_state_does():
    # obs 1 -> 2 (truncated by the time limit), obs 3 -> end (terminated)
    rows = {
        "observation": np.array([[1.0], [3.0]]),
        "action": np.zeros((2, 1)),
        "next_observation": np.array([[2.0], [9.0]]),
    }
    terminal = np.array([False, True])
    plain = replay.with_absorbing(rows, terminal, absorbing=False)
    np.testing.assert_array_equal(plain["discount"], [1.0, 0.0])
    dac = replay.with_absorbing(rows, terminal, absorbing=True)
    # the termination leads to the absorbing state (zeroed, flagged) and bootstraps from it
    np.testing.assert_array_equal(dac["discount"], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(dac["next_absorbing"], [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(dac["next_observation"][:, 0], [2.0, 0.0, 0.0])
    # so with gamma 1 the terminated row's target includes the absorbing state's value
    next_q = jnp.array([[4.0, 7.0, 7.0], [4.0, 7.0, 7.0]])
    target = _target(
        None,
        jnp.zeros(3),
        jnp.asarray(dac["discount"]),
        next_q,
        jnp.zeros(3),
        jnp.float32(0.0),
        1.0,
    )
    np.testing.assert_allclose(target, [4.0, 7.0, 7.0])
    target = _target(
        None,
        jnp.zeros(2),
        jnp.asarray(plain["discount"]),
        next_q[:, :2],
        jnp.zeros(2),
        jnp.float32(0.0),
        1.0,
    )
    np.testing.assert_allclose(target, [4.0, 0.0])


def test_absorbing_states_are_zeroed_and_flagged_in_the_network_input():
    norm = {"mean": jnp.array([1.0, 1.0]), "std": jnp.array([2.0, 2.0])}
    out = states(jnp.array([[5.0, 3.0], [5.0, 3.0]]), jnp.array([0.0, 1.0]), norm)
    np.testing.assert_allclose(out, [[2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def test_temperature_rises_when_entropy_is_below_target_and_falls_above():
    target_entropy = -1.0
    low_entropy = jnp.array([3.0, 2.0])  # log-probs: entropy about -2.5 < -1
    high_entropy = jnp.array([-1.0, -2.0])  # entropy about 1.5 > -1
    for log_probs, direction in ((low_entropy, +1), (high_entropy, -1)):
        log_alpha = jnp.float32(np.log(0.1))
        grad = jax.grad(losses.temperature_loss)(log_alpha, log_probs, target_entropy)
        step = -grad  # a gradient-descent step on log alpha
        assert np.sign(float(step)) == direction
        expected = -float(np.mean(log_probs + target_entropy))
        assert float(grad) == pytest.approx(expected)


def test_actor_loss_prefers_higher_q_and_pays_the_entropy_price():
    q = jnp.array([[1.0, 3.0], [2.0, 0.0]])  # min over the twins: 1, 0
    log_probs = jnp.array([0.5, -0.5])
    assert float(losses.actor_loss(q, log_probs, jnp.float32(0.2))) == pytest.approx(
        np.mean([0.2 * 0.5 - 1.0, 0.2 * -0.5 - 0.0])
    )


def test_gradient_penalty_is_taken_at_interpolates_of_a_nonlinear_discriminator():
    # D(x) = x^2 in 1-d; expert at +1, agent at -1. Interpolates x = 2m - 1 (m uniform), so
    # |dD/dx| = |4m - 2| is uniform on [0, 2] and E[(|grad| - 1)^2] = 1/3. At the expert or
    # agent points themselves |grad| = 2 and the penalty would be exactly 1.
    n = 20_000
    expert, agent = jnp.ones((n, 1)), -jnp.ones((n, 1))
    _, metrics = losses.discriminator_loss(
        lambda x: jnp.sum(jnp.square(x), axis=-1),
        expert,
        agent,
        jax.random.PRNGKey(0),
        gradient_penalty=10.0,
        gradient_penalty_target=1.0,
    )
    assert float(metrics["gradient_penalty"]) == pytest.approx(1.0 / 3.0, abs=0.02)


def test_discriminator_loss_labels_expert_one_and_agent_zero():
    loss, metrics = losses.discriminator_loss(
        lambda x: x[:, 0],
        jnp.full((4, 1), 3.0),
        jnp.full((4, 1), -3.0),
        jax.random.PRNGKey(0),
        gradient_penalty=0.0,
        gradient_penalty_target=1.0,
    )
    # expert logits +3 -> softplus(-3); agent logits -3 -> softplus(-3): both small
    assert float(loss) == pytest.approx(2 * float(jax.nn.softplus(-3.0)), rel=1e-5)
    assert float(metrics["discriminator_accuracy"]) == 1.0


@pytest.mark.parametrize("kind", ["gail", "airl"])
def test_imitation_reward_is_higher_for_expert_like_inputs(kind):
    expert_like, agent_like = jnp.array([2.0]), jnp.array([-2.0])  # logits log D/(1-D)
    assert float(losses.imitation_reward(kind, expert_like)[0]) > float(
        losses.imitation_reward(kind, agent_like)[0]
    )


def _tiny_ail(task, **overrides):
    # a few hundred updates: a faster discriminator than the default 1e-5 (50,000-step runs)
    settings = {"discriminator_learning_rate": 3e-4, **overrides}
    config = AILConfig(
        actor_hidden_sizes=(16,),
        critic_hidden_sizes=(16,),
        discriminator_hidden_sizes=(32, 32),
        batch_size=64,
        **settings,
    )
    return AILLearner(task, config, Normalizer.identity(2), seed=0)


def _rows(rng, action_sign, count=64):
    obs = rng.normal(size=(count, 2)).astype(np.float32)
    return {
        "observation": obs,
        "absorbing": np.zeros(count, np.float32),
        "action": (action_sign * np.abs(rng.normal(size=(count, 1)))).astype(np.float32),
        "next_observation": obs,
        "next_absorbing": np.zeros(count, np.float32),
        "discount": np.ones(count, np.float32),
    }


@pytest.mark.slow
def test_learner_rewards_expert_like_agent_transitions_more(toy_task):
    learner = _tiny_ail(toy_task)
    rng = np.random.default_rng(0)
    stack = lambda sign: jax.tree_util.tree_map(  # noqa: E731
        lambda *x: np.stack(x), *[_rows(rng, sign) for _ in range(20)]
    )
    for _ in range(10):
        learner.step({"agent": stack(-1.0), "expert": stack(1.0)})
    one = lambda sign: jax.tree_util.tree_map(lambda x: x[None], _rows(rng, sign))  # noqa: E731
    expert_like = learner.step({"agent": one(1.0), "expert": one(1.0)})["reward"]
    agent_like = learner.step({"agent": one(-1.0), "expert": one(1.0)})["reward"]
    assert float(expert_like) > float(agent_like) + 0.5


@pytest.mark.slow
def test_target_critic_lags_the_online_critic_by_tau(toy_task):
    learner = _tiny_ail(toy_task, tau=0.25)
    rng = np.random.default_rng(0)
    batch = {"agent": _rows(rng, -1.0), "expert": _rows(rng, 1.0)}
    before = learner.state
    after, _ = learner.update(before, batch, learner.norm)
    expected = jax.tree_util.tree_map(
        lambda online, old: 0.25 * online + 0.75 * old, after.critic, before.target_critic
    )
    for got, want in zip(
        jax.tree_util.tree_leaves(after.target_critic),
        jax.tree_util.tree_leaves(expected),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    moved = jax.tree_util.tree_map(
        lambda a, b: float(jnp.max(jnp.abs(a - b))), after.critic, after.target_critic
    )
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-4  # not the online critic itself


@pytest.mark.slow
def test_critic_update_uses_the_target_critic_for_the_next_state_value(toy_task):
    # With a zero learning rate nothing moves; a critic step from hand-set target values
    # gives the loss of a target computed from the *target* critic.
    learner = _tiny_ail(toy_task, critic_learning_rate=1e-12, discount=1.0)
    rng = np.random.default_rng(0)
    batch = {"agent": _rows(rng, -1.0), "expert": _rows(rng, 1.0)}
    state = learner.state
    zero_target = jax.tree_util.tree_map(jnp.zeros_like, state.target_critic)
    big_target = jax.tree_util.tree_map(lambda x: x + 5.0, state.target_critic)
    losses_ = [
        float(
            learner.update(state._replace(target_critic=t), batch, learner.norm)[1]["critic_loss"]
        )
        for t in (zero_target, big_target)
    ]
    assert losses_[0] != pytest.approx(losses_[1], rel=1e-3)


# -- BC ----------------------------------------------------------------------------------------


def test_bc_losses_on_a_known_batch():
    predicted = jnp.array([[0.5, -0.5], [0.0, 1.0]])
    actions = jnp.array([[1.0, -1.0], [0.0, 0.0]])
    assert float(bc_losses.mse(predicted, actions)) == pytest.approx((0.25 + 0.25 + 0 + 1) / 4)
    # tanh(N(0, 1)) at action 0: -log N(0; 0, 1) per element, the tanh's Jacobian is 1 there
    nll = bc_losses.tanh_gaussian_nll(jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.zeros((1, 2)))
    assert float(nll) == pytest.approx(np.log(2 * np.pi))
    logits = jnp.array([[0.0, np.log(3.0)]])  # p = (1/4, 3/4)
    assert float(bc_losses.cross_entropy(logits, jnp.array([1]))) == pytest.approx(
        -np.log(0.75), rel=1e-5
    )


@pytest.mark.slow
def test_bc_update_returns_the_loss_of_its_batch_and_descends_it(toy_task):
    from rlds_hub.learners.bc import learning
    from rlds_hub.learners.bc.config import BCConfig
    from rlds_hub.learners.bc.networks import make_networks

    networks = make_networks(toy_task, BCConfig(hidden_sizes=(8,)))
    params = jax.tree_util.tree_map(jnp.zeros_like, networks.init(jax.random.PRNGKey(0)))
    optimizer = optax.sgd(0.1)
    state = learning.TrainingState(
        params, optimizer.init(params), jax.random.PRNGKey(0), jnp.int32(0)
    )
    batch = {
        "observation": jnp.array([[1.0, 2.0], [3.0, 4.0]]),
        "action": jnp.array([[0.5], [-1.0]]),
    }
    norm = {"mean": jnp.zeros(2), "std": jnp.ones(2)}
    state, loss = learning.update(networks, optimizer, state, batch, norm)
    assert float(loss) == pytest.approx((0.25 + 1.0) / 2)
    _, loss_after = learning.update(networks, optimizer, state, batch, norm)
    assert float(loss_after) < float(loss)
