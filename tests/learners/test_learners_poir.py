"""POIR: the distance to the expert's states and its calibration, expert segments, the
planner bringing a state back to the demonstrations, the switch, and a run end to end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlds_hub.learners.errors import LearnerError
from rlds_hub.learners.normalization import Normalizer
from rlds_hub.learners.poir import distance, planner
from rlds_hub.learners.poir.acting import POIRPolicy
from rlds_hub.learners.poir.config import POIRConfig
from rlds_hub.learners.poir.learning import POIRLearner
from rlds_hub.learners.task import TaskSpec


def test_knn_distance_is_the_mean_distance_to_the_nearest_references():
    references = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    d = distance.knn_distance(jnp.array([[0.0, 0.0], [1.0, 1.0]]), references, 2)
    np.testing.assert_allclose(d, [0.5, (1.0 + np.sqrt(2.0)) / 2], rtol=1e-5)


def test_segments_follow_each_demonstration_and_stop_at_its_end():
    states = np.arange(10, dtype=np.float32)[:, None]
    episode = np.array([0] * 4 + [1] * 6)
    segments = distance.continuations(states, episode, np.array([0, 2, 4, 8]), 3)
    assert segments[..., 0].tolist() == [[1, 2, 3], [3, 3, 3], [5, 6, 7], [9, 9, 9]]


def test_threshold_is_a_quantile_of_held_out_demonstration_distances():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(600, 2)).astype(np.float32) * 0.1
    episode = np.repeat(np.arange(3), 200)
    threshold = distance.calibrate_threshold(
        states, episode, k=3, quantile=0.95, reference_states=1000, seed=0
    )
    fresh = rng.normal(size=(400, 2)).astype(np.float32) * 0.1
    inside = distance.knn_distance(jnp.asarray(fresh), jnp.asarray(states), 3) <= threshold
    assert 0.85 < float(jnp.mean(inside)) <= 1.0
    assert float(distance.knn_distance(jnp.ones((1, 2)), jnp.asarray(states), 3)[0]) > threshold


def _toy_learner(**overrides):
    """Demonstrations near the origin of a 2-d point whose action moves it: z' = z + 0.1 a."""
    task = TaskSpec.from_specs(
        {"kind": "array", "shape": [2], "dtype": "float32", "name": "o"},
        {
            "kind": "bounded",
            "shape": [2],
            "dtype": "float32",
            "minimum": -1.0,
            "maximum": 1.0,
            "name": "a",
        },
    )
    rng = np.random.default_rng(0)
    obs = rng.uniform(-0.3, 0.3, size=(4000, 2)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(4000, 2)).astype(np.float32)
    data = {"observation": obs, "action": act, "next_observation": obs + 0.1 * act}
    config = POIRConfig(
        bc_hidden_sizes=(32,),
        dynamics_hidden_sizes=(64, 64),
        ensemble_size=2,
        num_samples=64,
        horizon=5,
        batch_size=128,
        steps_per_call=100,
        reference_states=512,
        knn=3,
        segments=8,
        cost="knn",
        **overrides,
    )
    learner = POIRLearner(
        task, config, Normalizer.from_arrays(obs), data, np.repeat(np.arange(8), 500), seed=0
    )
    for _ in range(15):
        learner.step()
    return task, config, learner


@pytest.mark.slow
def test_planner_brings_a_state_back_to_the_demonstrations_and_switch_uses_bc_inside():
    task, config, learner = _toy_learner(proposal_noise=0.8, iterations=3, trust=False)
    params = learner.planner_params()
    start = jnp.array([0.45, 0.45])  # outside the demonstrations' box
    z0 = planner.normalise(params, start)
    horizon = jnp.zeros((config.horizon, 2))
    plan, _ = planner.plan(
        learner.networks, config, params, z0, horizon, jnp.bool_(False), jax.random.PRNGKey(1)
    )
    assert float(plan[0, 0]) < -0.3 and float(plan[0, 1]) < -0.3, plan[0]  # towards the box
    policy = POIRPolicy(task, learner.networks, config, params, seed=0)
    policy.normalised_action(np.array([0.45, 0.45], np.float32))
    assert policy.planned == 1
    action = policy.normalised_action(np.array([0.0, 0.05], np.float32))
    assert policy.planned == 1  # inside: the BC action
    bc = planner.bc_actions(
        learner.networks, params, planner.normalise(params, jnp.array([[0.0, 0.05]]))
    )[0]
    np.testing.assert_allclose(action, bc, rtol=1e-6)
    # The threshold separates the demonstrations from the far start.
    assert float(params["threshold"]) < float(
        distance.knn_distance(z0[None], params["references"], config.knn)[0]
    )
    # With trust, a state where the ensemble is less sure than on the demonstrations is left
    # to BC: a tiny trust scale means the planner never acts.
    cautious = config.replace(trust=True, trust_scale=1e-6)
    learner.config = cautious
    policy = POIRPolicy(task, learner.networks, cautious, learner.planner_params(), seed=0)
    policy.normalised_action(np.array([0.45, 0.45], np.float32))
    assert policy.planned == 0


@pytest.mark.slow
def test_push_sequences_find_a_sustained_correction_that_noise_around_bc_does_not():
    # BC of uniform random actions is ~0 everywhere; with no proposal noise, only the push
    # sequences (an action at a bound for their first steps) can move the point back.
    _, config, learner = _toy_learner(
        proposal_noise=0.0, trust=False, push_fractions=(0.2, 0.6, 1.0)
    )
    params = learner.planner_params()
    z0 = planner.normalise(params, jnp.array([0.6, 0.6]))
    previous = jnp.zeros((config.horizon, 2))
    plan, _ = planner.plan(
        learner.networks, config, params, z0, previous, jnp.bool_(False), jax.random.PRNGKey(1)
    )
    assert float(plan[0, 0]) < -0.5 and float(plan[0, 1]) < -0.5, plan[0]
    sign, length = planner.push_schedule(config, config.num_samples)
    assert sign.tolist()[:1] == [0.0] and length.tolist()[0] == 0  # sequence 0: BC itself
    assert sorted(length.tolist())[-6:] == [1, 1, 3, 3, 5, 5]  # 0.2, 0.6, 1.0 of 5 steps
    assert sorted(sign.tolist()) == [-1.0] * 3 + [0.0] * (config.num_samples - 6) + [1.0] * 3
    without = config.replace(push_fractions=())
    plan, _ = planner.plan(
        learner.networks, without, params, z0, previous, jnp.bool_(False), jax.random.PRNGKey(1)
    )
    assert float(jnp.max(jnp.abs(plan[0]))) < 0.3, plan[0]  # BC's ~0 action, nothing better


def test_push_sequences_must_leave_room_for_bc():
    with pytest.raises(LearnerError, match="push sequences"):
        POIRConfig(
            num_samples=10, ensemble_size=5, push_fractions=(0.1, 0.2, 0.3, 0.4, 0.5)
        ).validate()


@pytest.mark.slow
def test_dynamics_model_learns_the_demonstrations_transitions():
    _, _, learner = _toy_learner()
    params = learner.planner_params()
    z = planner.normalise(params, jnp.array([[0.1, -0.1], [0.0, 0.2]]))
    actions = jnp.array([[1.0, 0.0], [0.0, -1.0]])
    predicted = planner.predict(learner.networks, params, jnp.repeat(z, 1, 0), actions, 2)
    expected = planner.normalise(params, jnp.array([[0.2, -0.1], [0.0, 0.1]]))
    np.testing.assert_allclose(predicted, expected, atol=0.08)


@pytest.mark.slow
def test_dynamics_target_next_makes_the_members_output_the_next_state_itself():
    # Acme's target: each member outputs z' (the default's outputs are the scaled change).
    _, _, learner = _toy_learner(dynamics_target="next")
    params = learner.planner_params()
    z = planner.normalise(params, jnp.array([[0.1, -0.1], [0.0, 0.2]]))
    actions = jnp.array([[1.0, 0.0], [0.0, -1.0]])
    expected = planner.normalise(params, jnp.array([[0.2, -0.1], [0.0, 0.1]]))
    outputs = learner.networks.dynamics.apply(params["dynamics"], z, actions)  # [E, 2, D]
    np.testing.assert_allclose(outputs, np.broadcast_to(expected, outputs.shape), atol=0.15)
    predicted = planner.predict(learner.networks, params, z, actions, 2)
    np.testing.assert_allclose(predicted, expected, atol=0.15)
    with pytest.raises(LearnerError, match="dynamics_target must be 'change'"):
        POIRConfig(dynamics_target="state").validate()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_poir_trains_offline_then_online_and_its_policy_loads(tmp_path, point_mass_demos):
    from rlds_hub.data import episode_table
    from rlds_hub.learners import load_policy
    from rlds_hub.learners.run import train

    env = "dm_control/point_mass-easy"
    demos = point_mass_demos
    config = {
        "bc_hidden_sizes": [32],
        "dynamics_hidden_sizes": [32],
        "ensemble_size": 2,
        "num_samples": 8,
        "horizon": 4,
        "push_fractions": [0.5],
        "reference_states": 256,
        "steps_per_call": 50,
        "eval_episodes": 1,
        "eval_every": 1200,
        "online_steps": 1000,
        "finetune_updates_per_episode": 20,
        "online_shift": {"action_noise": 0.2},
    }
    result = train(
        "poir",
        dataset=demos,
        env=env,
        out=tmp_path / "run",
        steps=200,
        config=config,
        progress=False,
        echo=lambda line: None,
    )
    assert result.steps == 1200
    # The reported evaluation is the recorded one (on the run's validation seed).
    evaluated = episode_table(str(tmp_path / "run" / "evaluation"))
    assert result.evaluations[-1]["return"] == pytest.approx(evaluated[-1]["return"], rel=1e-5)
    assert 0.0 <= result.evaluations[-1]["planned_fraction"] <= 1.0
    experience = episode_table(str(tmp_path / "run" / "experience"))
    assert len(experience) == 1 and experience[0]["num_transitions"] == 1000
    from rlds_hub.learners import seeds
    from rlds_hub.storage import open_dataset

    sessions = {
        name: [s["seed"] for s in open_dataset(str(tmp_path / "run" / name)).metadata["sessions"]]
        for name in ("experience", "evaluation")
    }
    assert all(s in seeds.ONLINE for s in sessions["experience"])
    assert {seeds.range_name(s) for s in sessions["evaluation"]} == {"validation"}
    from rlds_hub.envs import make_env

    policy = load_policy(tmp_path / "run", seed=1)
    game = make_env(env, seed=3)
    action = policy(game.reset())
    assert action.shape == (2,) and action.dtype == np.float64 and np.all(np.abs(action) <= 1)
