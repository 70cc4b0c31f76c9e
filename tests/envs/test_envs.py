"""rlds_hub.envs: the env registry, RandomPolicy's spec-exactness, and that experts are good."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import dm_env
import numpy as np
import pytest
from dm_env import specs
from hypothesis import given, settings
from hypothesis import strategies as st

from rlds_hub.envs import (
    EXPERTS,
    Policy,
    RandomPolicy,
    canonical_env_name,
    list_envs,
    list_policies,
    make_env,
    make_policy,
)
from rlds_hub.envs.gymnasium_env import GymnasiumEnv

# dm_control probes GLFW on import; on a headless machine that only warns.
pytestmark = pytest.mark.filterwarnings("ignore:.*DISPLAY environment variable")


def assert_conforms(spec: Any, value: Any) -> None:
    """Same nest structure, ndarray leaves of exactly the spec's dtype and shape, in bounds."""
    if isinstance(spec, dict):
        assert type(value) is type(spec) and list(value) == list(spec)
        for key, sub in spec.items():
            assert_conforms(sub, value[key])
    elif isinstance(spec, tuple | list):
        assert type(value) is type(spec) and len(value) == len(spec)
        for sub, item in zip(spec, value, strict=True):
            assert_conforms(sub, item)
    else:
        assert isinstance(value, np.ndarray), type(value)
        assert value.dtype == spec.dtype and value.shape == spec.shape
        spec.validate(value)
        if np.issubdtype(spec.dtype, np.floating):
            assert np.all(np.isfinite(value))


# -- registry -------------------------------------------------------------------------------


@pytest.mark.slow
def test_make_env_dm_control_is_seeded() -> None:
    env = make_env("dm_control/point_mass-easy", seed=1)
    again = make_env("dm_control/point_mass-easy", seed=1)
    assert isinstance(env, dm_env.Environment)
    assert set(env.observation_spec()) == {"position", "velocity"}
    first, second = env.reset().observation, again.reset().observation
    np.testing.assert_array_equal(first["position"], second["position"])


@pytest.mark.parametrize("name", ["gym/Pendulum-v1", "Pendulum-v1"])
def test_make_env_gym_names_give_a_gymnasium_env(name: str) -> None:
    env = make_env(name, seed=0)
    assert isinstance(env, GymnasiumEnv)
    assert env.action_spec() == specs.BoundedArray((1,), np.float32, -2.0, 2.0)
    assert canonical_env_name(name) == "gym/Pendulum-v1"
    timestep = env.reset()
    np.testing.assert_array_equal(timestep.observation, make_env(name, seed=0).reset().observation)


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("dm_control/cartpol-swingup", "dm_control/cartpole-swingup"),
        ("Pendulum-v0", "gym/Pendulum-v1"),
        ("gym/CartPole-v9", "gym/CartPole-v1"),
        ("dm_control/cartpole", "dm_control/cartpole-balance"),
    ],
)
def test_unknown_names_suggest_close_matches(name: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match="list_envs") as error:
        make_env(name)
    assert suggestion in str(error.value)


def test_list_envs_has_both_families_and_only_usable_gym_envs() -> None:
    names = list_envs()
    assert {"dm_control/cartpole-swingup", "dm_control/point_mass-easy"} <= set(names)
    assert {"gym/Pendulum-v1", "gym/CartPole-v1", "gym/FrozenLake-v1"} <= set(names)
    assert not any(name.startswith(("gym/phys2d/", "gym/tabular/")) for name in names)
    assert "gym/HalfCheetah-v2" not in names  # needs mujoco-py
    assert set(EXPERTS) <= set(names)


# -- policies -------------------------------------------------------------------------------


def _leaf_specs() -> st.SearchStrategy[specs.Array]:
    def bounded(dtype: Any, shape: tuple[int, ...], low: Any, high: Any) -> specs.Array:
        low, high = min(low, high), max(low, high)
        return specs.BoundedArray(shape, dtype, low, high)

    shapes = st.lists(st.integers(0, 3), max_size=3).map(tuple)
    floats = st.sampled_from([np.float16, np.float32, np.float64])
    ints = st.sampled_from([np.int8, np.uint8, np.int32, np.int64, np.uint64])
    return st.one_of(
        st.builds(specs.DiscreteArray, st.integers(1, 100), st.sampled_from([np.int32, np.int64])),
        st.builds(specs.Array, shapes, st.sampled_from([np.float32, np.float64, np.int16, bool])),
        st.builds(bounded, floats, shapes, st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)),
        st.builds(bounded, ints, shapes, st.integers(0, 100), st.integers(0, 100)),
        st.builds(
            specs.BoundedArray,
            shapes,
            st.just(np.float32),
            st.sampled_from([-np.inf, 0.0, -3.4e38]),
            st.sampled_from([np.inf, 3.4e38]),
        ),
        st.builds(
            specs.BoundedArray,
            shapes,
            st.just(np.int64),
            st.just(np.iinfo(np.int64).min),
            st.just(np.iinfo(np.int64).max),
        ),
        st.builds(specs.BoundedArray, shapes, st.just(bool), st.just(False), st.just(True)),
        st.builds(specs.StringArray, shapes),
    )


nested_specs = st.recursive(
    _leaf_specs(),
    lambda children: st.one_of(
        st.dictionaries(st.text("abcxyz", min_size=1, max_size=4), children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from("pqr"), children, max_size=3).map(OrderedDict),
    ),
    max_leaves=6,
)


@settings(max_examples=80, deadline=None)
@given(spec=nested_specs, seed=st.integers(0, 2**32 - 1))
def test_random_policy_conforms_exactly_to_nested_specs(spec: Any, seed: int) -> None:
    policy = RandomPolicy(spec, seed=seed)
    policy.reset()
    first = policy(None)  # type: ignore[arg-type]
    assert_conforms(spec, first)
    assert_conforms(spec, policy(None))  # type: ignore[arg-type]
    assert str(RandomPolicy(spec, seed=seed)(None)) == str(first)  # type: ignore[arg-type]


def test_random_discrete_action_is_a_0d_int_array() -> None:
    action = RandomPolicy(specs.DiscreteArray(3, dtype=np.int64), seed=0)(None)  # type: ignore[arg-type]
    assert isinstance(action, np.ndarray) and action.shape == () and action.dtype == np.int64


def test_make_policy_names_and_errors() -> None:
    env = make_env("gym/CartPole-v1", seed=0)
    assert list_policies("gym/CartPole-v1") == ["random"]
    assert list_policies("Pendulum-v1") == ["random", "expert"]
    assert isinstance(make_policy("random", "gym/CartPole-v1", env, seed=0), Policy)
    with pytest.raises(ValueError, match="envs with experts: dm_control/cartpole-balance"):
        make_policy("expert", "gym/CartPole-v1", env)
    with pytest.raises(ValueError, match="unknown policy 'greedy'"):
        make_policy("greedy", "gym/CartPole-v1", env)


# -- experts --------------------------------------------------------------------------------


def _mean_return(env_name: str, policy_name: str, seeds: range) -> float:
    returns = []
    for seed in seeds:
        env = make_env(env_name, seed=seed)
        policy = make_policy(policy_name, env_name, env, seed=seed)
        action_spec = env.action_spec()
        timestep, total = env.reset(), 0.0
        policy.reset()
        while not timestep.last():
            action = policy(timestep)
            assert_conforms(action_spec, action)
            timestep = env.step(action)
            total += float(timestep.reward)
        returns.append(total)
    return float(np.mean(returns))


# (env, episodes, minimum expert return, required margin over random). dm_control returns are in
# [0, 1000]; Pendulum-v1 returns are negative costs (random is about -1200, experts about -150).
EXPERT_CASES = [
    ("dm_control/point_mass-easy", range(1), 750.0, 600.0),
    ("dm_control/cartpole-balance", range(1), 950.0, 300.0),
    ("dm_control/cartpole-swingup", range(1), 800.0, 600.0),
    ("gym/Pendulum-v1", range(3), -300.0, 600.0),
]


@pytest.mark.parametrize(("env_name", "seeds", "minimum", "margin"), EXPERT_CASES)
def test_expert_beats_random_by_a_wide_margin(
    env_name: str, seeds: range, minimum: float, margin: float
) -> None:
    expert = _mean_return(env_name, "expert", seeds)
    random = _mean_return(env_name, "random", seeds)
    assert expert >= minimum, (expert, random)
    assert expert - random >= margin, (expert, random)
