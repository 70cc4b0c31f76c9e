"""POIR's planner on a toy model: the chosen sequence lowers the tracking cost, and the
tracking cost itself is the distance to the best-matching expert segment."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_learners_poir import _toy_learner

from rlds_hub.learners.poir import distance, planner


def test_tracking_cost_is_the_discounted_distance_to_the_best_segment():
    trajectories = jnp.array([[[0.0, 0.0], [1.0, 0.0]]])  # [N=1, H=2, D=2]
    segments = jnp.array([[[3.0, 4.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]])
    cost = distance.tracking_cost(trajectories, segments, jnp.array([1.0, 0.5]))
    # segment 0: 5 + 0.5 * 0 = 5; segment 1: 1 + 0.5 * 1 = 1.5 -> the best is 1.5
    assert float(cost[0]) == pytest.approx(1.5, rel=1e-5)


def _rollout_cost(learner, config, params, z0, actions):
    """The tracking cost of one sequence ``[H, A]`` through every member, averaged."""
    n = config.num_samples
    start = jnp.broadcast_to(z0, (n, z0.shape[-1]))

    def step(z, a):
        z_next = planner.predict(
            learner.networks,
            params,
            z,
            jnp.broadcast_to(a, (n, a.shape[-1])),
            learner.networks.dynamics.size,
        )
        return z_next, z_next

    _, states = jax.lax.scan(step, start, actions)
    return float(jnp.mean(planner.score_trajectories(config, params, z0, states)))


@pytest.mark.slow
def test_the_chosen_plan_lowers_the_tracking_cost_below_bc_and_random_sequences():
    _, config, learner = _toy_learner(trust=False, proposal_noise=0.8)
    config = config.replace(cost="tracking")  # segments: the toy demonstrations' next states
    params = learner.planner_params()
    z0 = planner.normalise(params, jnp.array([0.5, -0.45]))  # off the demonstrations
    chosen, info = planner.plan(
        learner.networks,
        config,
        params,
        z0,
        jnp.zeros((config.horizon, 2)),
        jnp.bool_(False),
        jax.random.PRNGKey(0),
    )
    chosen_cost = _rollout_cost(learner, config, params, z0, chosen)
    assert chosen_cost < float(info["bc_cost"]) * 0.8
    rng = np.random.default_rng(0)
    random_costs = [
        _rollout_cost(
            learner,
            config,
            params,
            z0,
            jnp.asarray(rng.uniform(-1, 1, (config.horizon, 2)), jnp.float32),
        )
        for _ in range(10)
    ]
    assert chosen_cost < min(random_costs)


def test_top_k_aggregation_averages_the_k_cheapest_sequences_and_softmax_weights_them():
    from rlds_hub.learners.poir.config import POIRConfig

    actions = jnp.asarray(np.arange(2 * 4, dtype=np.float32).reshape(2, 4, 1))  # [H, N, A]
    costs = jnp.array([3.0, 0.5, 2.0, 1.0])
    top = POIRConfig(aggregation="top_k", top_k=2, num_samples=5, ensemble_size=5)
    plan, cost = planner.weighted_average(top, actions, costs)
    # the two cheapest: sequences 1 and 3 -> (1 + 3) / 2 and (5 + 7) / 2
    np.testing.assert_allclose(np.asarray(plan)[:, 0], [2.0, 6.0])
    assert float(cost) == pytest.approx(0.75)
    soft, _ = planner.weighted_average(POIRConfig(), actions, costs)
    assert not np.allclose(np.asarray(soft), np.asarray(plan))  # the default still weights


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"aggregation": "median"}, "aggregation must be"),
        ({"aggregation": "top_k", "top_k": 61}, "top_k (61)"),
    ],
)
def test_bad_aggregation_options_are_refused_with_the_valid_range(options, message):
    from rlds_hub.learners import config as config_lib
    from rlds_hub.learners.errors import LearnerError
    from rlds_hub.learners.poir.config import POIRConfig

    with pytest.raises(LearnerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config_lib.from_json(POIRConfig, options)
