"""GymnasiumEnv: specs from spaces, spec-exact observations and actions, episode ends, seeding."""

from __future__ import annotations

import sys
from typing import Any

import dm_env
import gymnasium as gym
import numpy as np
import pytest
from dm_env import specs
from hypothesis import given, settings
from hypothesis import strategies as st

from rlds_hub.envs.gymnasium_env import GymnasiumEnv, spec_from_space
from rlds_hub.envs.policies import RandomPolicy


def assert_conforms(spec: Any, value: Any) -> None:
    """Checks ``value`` against a spec nest: same structure, ndarray leaves, exact dtype/shape."""
    if isinstance(spec, dict):
        assert isinstance(value, dict)
        assert list(value) == list(spec)
        for key, sub in spec.items():
            assert_conforms(sub, value[key])
    elif isinstance(spec, tuple):
        assert isinstance(value, tuple) and len(value) == len(spec)
        for sub, item in zip(spec, value, strict=True):
            assert_conforms(sub, item)
    else:
        assert isinstance(value, np.ndarray), type(value)
        assert value.dtype == spec.dtype and value.shape == spec.shape
        spec.validate(value)


class SpaceEnv(gym.Env):
    """A gym env over arbitrary spaces: observations are samples (or ``make_obs``), and it
    terminates or truncates after ``episode_length`` steps. Records what it receives."""

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        episode_length: int = 5,
        terminate: bool = True,
        make_obs: Any = None,
    ) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self.episode_length = episode_length
        self.terminate = terminate
        self.make_obs = make_obs
        self.seeds: list[int | None] = []
        self.actions: list[Any] = []
        self.closed = False
        self.t = 0

    def _obs(self) -> Any:
        return self.make_obs() if self.make_obs else self.observation_space.sample()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self.seeds.append(seed)
        self.t = 0
        return self._obs(), {"reset": True}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        assert self.action_space.contains(action), (action, self.action_space)
        self.actions.append(action)
        self.t += 1
        done = self.t >= self.episode_length
        info = {"t": self.t}
        return self._obs(), 0.5 * self.t, done and self.terminate, done and not self.terminate, info

    def close(self) -> None:
        self.closed = True


NESTED_OBS = gym.spaces.Dict(
    {
        "image": gym.spaces.Box(0, 255, (4, 4, 3), np.uint8),
        "state": gym.spaces.Box(-1.0, 1.0, (3,), np.float64),
        "pair": gym.spaces.Tuple((gym.spaces.Discrete(3, start=3), gym.spaces.MultiBinary(4))),
        "dice": gym.spaces.MultiDiscrete([6, 6]),
        "note": gym.spaces.Text(8),
    }
)
NESTED_ACTION = gym.spaces.Dict(
    {
        "move": gym.spaces.Box(-2.0, 2.0, (2,), np.float32),
        "choice": gym.spaces.Discrete(4),
        "shifted": gym.spaces.Discrete(5, start=-2),
        "flags": gym.spaces.MultiBinary((2, 2)),
        "grid": gym.spaces.MultiDiscrete(np.array([[2, 3], [4, 5]]), start=np.ones((2, 2), int)),
        "both": gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Text(8))),
    }
)


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        (
            gym.spaces.Box(-1.0, 2.0, (3,), np.float32),
            specs.BoundedArray((3,), np.float32, -1.0, 2.0, "observation"),
        ),
        (
            gym.spaces.Box(-np.inf, np.inf, (2, 2), np.float64),
            specs.BoundedArray((2, 2), np.float64, -np.inf, np.inf, "observation"),
        ),
        (
            gym.spaces.Box(0, 255, (2,), np.uint8),
            specs.BoundedArray((2,), np.uint8, 0, 255, "observation"),
        ),
        (gym.spaces.Discrete(7), specs.DiscreteArray(7, dtype=np.int64, name="observation")),
        (
            gym.spaces.Discrete(4, start=3),
            specs.BoundedArray((), np.int64, 3, 6, "observation"),
        ),
        (
            gym.spaces.MultiDiscrete([2, 5], start=[1, -1]),
            specs.BoundedArray((2,), np.int64, [1, -1], [2, 3], "observation"),
        ),
        (gym.spaces.MultiBinary(3), specs.BoundedArray((3,), np.int8, 0, 1, "observation")),
        (gym.spaces.MultiBinary([2, 3]), specs.BoundedArray((2, 3), np.int8, 0, 1, "observation")),
    ],
)
def test_each_space_kind_maps_to_its_spec(space: gym.Space, expected: specs.Array) -> None:
    spec = spec_from_space(space, "observation")
    assert type(spec) is type(expected)
    assert spec == expected
    assert spec.name == "observation"


def test_text_space_maps_to_string_array() -> None:
    spec = spec_from_space(gym.spaces.Text(10), "observation")
    assert isinstance(spec, specs.StringArray) and spec.shape == () and spec.string_type is str


def test_dict_and_tuple_spaces_map_to_nests_with_key_order_and_names() -> None:
    spec = spec_from_space(NESTED_OBS, "observation")
    assert list(spec) == list(NESTED_OBS.spaces)
    assert spec["state"].name == "state"
    assert isinstance(spec["pair"], tuple)
    assert [s.name for s in spec["pair"]] == ["0", "1"]
    assert spec["pair"][0] == specs.BoundedArray((), np.int64, 3, 5)


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Sequence(gym.spaces.Discrete(2)),
        gym.spaces.Graph(node_space=gym.spaces.Discrete(2), edge_space=None),
        gym.spaces.Dict(
            {"ok": gym.spaces.Discrete(2), "bad": gym.spaces.Sequence(gym.spaces.Discrete(2))}
        ),
    ],
)
def test_unsupported_space_raises_type_error_naming_it(space: gym.Space) -> None:
    with pytest.raises(TypeError, match=r"(Sequence|Graph).*supported spaces: Box, Discrete"):
        GymnasiumEnv(SpaceEnv(space, gym.spaces.Discrete(2)))


def test_nested_observations_and_actions_conform_exactly_to_specs() -> None:
    gym_env = SpaceEnv(NESTED_OBS, NESTED_ACTION, episode_length=20)
    env = GymnasiumEnv(gym_env, seed=0)
    policy = RandomPolicy(env.action_spec(), seed=0)
    timestep = env.reset()
    assert_conforms(env.observation_spec(), timestep.observation)
    while not timestep.last():
        action = policy(timestep)
        assert_conforms(env.action_spec(), action)
        timestep = env.step(action)
        assert_conforms(env.observation_spec(), timestep.observation)
    # The gym env got what its spaces want (it asserts `contains`), with native Python types.
    received = gym_env.actions[-1]
    assert type(received["choice"]) is int and type(received["shifted"]) is int
    assert type(received["both"]) is tuple and type(received["both"][1]) is str
    assert received["move"].dtype == np.float32 and received["flags"].dtype == np.int8


def test_discrete_observation_is_a_0d_int64_array_from_python_int() -> None:
    env = GymnasiumEnv(
        SpaceEnv(gym.spaces.Discrete(5, start=3), gym.spaces.Discrete(2), make_obs=lambda: 4)
    )
    observation = env.reset().observation
    assert isinstance(observation, np.ndarray) and observation.shape == ()
    assert observation.dtype == np.int64 and observation == 4
    env.observation_spec().validate(observation)


def test_terminated_gives_discount_zero_and_last() -> None:
    env = GymnasiumEnv(
        SpaceEnv(
            gym.spaces.Box(-1, 1, (2,), np.float32),
            gym.spaces.Discrete(2),
            episode_length=2,
            terminate=True,
        )
    )
    first = env.reset()
    assert first.first() and first.reward is None and first.discount is None
    mid = env.step(np.array(1))
    assert mid.mid() and mid.discount == 1.0
    last = env.step(np.array(0))
    assert last.last() and last.discount == 0.0 and last.reward == 1.0
    for value, spec in ((mid.reward, env.reward_spec()), (last.discount, env.discount_spec())):
        assert type(value) is np.float64
        spec.validate(value)
    # dm_env convention: stepping after LAST resets.
    assert env.step(np.array(0)).first()


def test_truncated_gives_discount_one_and_last() -> None:
    env = GymnasiumEnv(
        SpaceEnv(
            gym.spaces.Box(-1, 1, (2,), np.float32),
            gym.spaces.Box(-1, 1, (1,), np.float32),
            episode_length=1,
            terminate=False,
        )
    )
    env.reset()
    last = env.step(np.zeros(1, np.float32))
    assert last.last() and last.discount == 1.0 and type(last.discount) is np.float64
    assert last.step_type == dm_env.StepType.LAST


def test_seed_goes_to_the_first_reset_only_and_runs_reproduce() -> None:
    def rollout(seed: int) -> list[np.ndarray]:
        env = GymnasiumEnv(gym.make("CartPole-v1"), seed=seed)
        observations = []
        for _ in range(3):
            timestep = env.reset()
            observations.append(timestep.observation)
            for _ in range(5):
                observations.append(env.step(np.array(1)).observation)
        return observations

    first, again, other = rollout(3), rollout(3), rollout(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])
    spy = SpaceEnv(gym.spaces.Discrete(3), gym.spaces.Discrete(2))
    env = GymnasiumEnv(spy, seed=11)
    env.reset()
    env.reset()
    assert spy.seeds == [11, None]


def test_dtype_mismatch_raises_with_a_fix_and_cast_observations_casts() -> None:
    space = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,), np.float32)})

    def make() -> SpaceEnv:
        return SpaceEnv(
            space,
            gym.spaces.Discrete(2),
            make_obs=lambda: {"pos": np.array([1 / 3, 0.5], np.float64)},
        )

    with pytest.raises(ValueError) as error:
        GymnasiumEnv(make()).reset()
    message = str(error.value)
    for fragment in (
        "SpaceEnv",
        "observation['pos']",
        "float64",
        "float32",
        "cast_observations=True",
        "lose precision",
    ):
        assert fragment in message
    observation = GymnasiumEnv(make(), cast_observations=True).reset().observation["pos"]
    assert observation.dtype == np.float32
    np.testing.assert_array_equal(observation, np.array([1 / 3, 0.5], np.float32))


def test_flat_box_dtype_mismatch_is_caught_on_the_fast_path_too() -> None:
    calls = iter([np.zeros(3, np.float32), np.zeros(3, np.float64)])
    env = GymnasiumEnv(
        SpaceEnv(
            gym.spaces.Box(-1, 1, (3,), np.float32),
            gym.spaces.Discrete(2),
            make_obs=lambda: next(calls),
        )
    )
    env.reset()
    with pytest.raises(ValueError, match="float64 but its space declares float32"):
        env.step(np.array(0))


def test_shape_mismatch_is_an_error_even_when_casting() -> None:
    env = GymnasiumEnv(
        SpaceEnv(
            gym.spaces.Box(-1, 1, (3,), np.float32),
            gym.spaces.Discrete(2),
            make_obs=lambda: np.zeros(4),
        ),
        cast_observations=True,
    )
    with pytest.raises(ValueError, match=r"shape \(4,\) but its space declares \(3,\)"):
        env.reset()


def test_last_info_gym_env_and_close() -> None:
    gym_env = SpaceEnv(gym.spaces.Discrete(3), gym.spaces.Discrete(2))
    env = GymnasiumEnv(gym_env)
    env.reset()
    assert env.last_info == {"reset": True}
    env.step(np.array(1))
    assert env.last_info == {"t": 1}
    assert env.gym_env is gym_env
    env.close()
    assert gym_env.closed


def test_module_does_not_import_tensorflow() -> None:
    import subprocess

    code = (
        "import sys, rlds_hub.envs.gymnasium_env, rlds_hub.envs, rlds_hub.recorders.recorder; "
        "sys.exit('tensorflow' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


BOX_DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8]


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(BOX_DTYPES),
    shape=st.lists(st.integers(0, 3), max_size=3).map(tuple),
    bounded=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_box_observations_and_random_actions_round_trip_exactly(
    dtype: type, shape: tuple[int, ...], bounded: bool, seed: int
) -> None:
    if np.issubdtype(dtype, np.floating) and not bounded:
        space = gym.spaces.Box(-np.inf, np.inf, shape, dtype)
    else:
        space = gym.spaces.Box(0, 100, shape, dtype)
    gym_env = SpaceEnv(space, space, episode_length=3)
    env = GymnasiumEnv(gym_env, seed=seed)
    policy = RandomPolicy(env.action_spec(), seed=seed)
    timestep = env.reset()
    while not timestep.last():
        assert_conforms(env.observation_spec(), timestep.observation)
        timestep = env.step(policy(timestep))
    assert_conforms(env.observation_spec(), timestep.observation)
