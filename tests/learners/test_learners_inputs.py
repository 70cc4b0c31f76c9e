"""Task specs, normalisation, configs and bad input: every mistake gets a clear error."""

import numpy as np
import pytest
from dm_env import specs

from rlds_hub.learners import config as config_lib
from rlds_hub.learners import inputs
from rlds_hub.learners.ail.config import AILConfig
from rlds_hub.learners.bc.config import BCConfig
from rlds_hub.learners.errors import DataError, LearnerError, SpecMismatchError
from rlds_hub.learners.normalization import Normalizer
from rlds_hub.learners.run import train
from rlds_hub.learners.task import TaskSpec
from rlds_hub.recorders import Recorder
from rlds_hub.testing import CounterEnv, record


def _nan_at_episode_1_step_3(episode, t):
    x = np.full(2, 0.1 * t)
    if (episode, t) == (1, 3):
        x[1] = np.nan
    return {"x": x}


def nan_env():
    """Episodes of 5 steps; observation x is NaN at (episode 1, step 3)."""
    return CounterEnv(
        lengths=(5,),
        terminate=(False,),
        observation=_nan_at_episode_1_step_3,
        observation_spec={"x": specs.Array((2,), np.float64, name="x")},
        action_spec=specs.BoundedArray((1,), np.float32, -2.0, 2.0, name="action"),
    )


def _record(path, env, episodes):
    record(env, path, episodes=episodes, policy=np.zeros(1, np.float32), env_name="toy")
    return path


def test_nan_observations_are_reported_with_episode_and_step(tmp_path):
    from rlds_hub.storage import open_dataset, select

    path = _record(tmp_path / "nan", nan_env(), 3)
    dataset = open_dataset(path)
    task = TaskSpec.from_dataset(dataset)
    with pytest.raises(DataError, match=r"observation/x is NaN in episode 1, step 3"):
        inputs.load_transitions(dataset, task)
    inputs.check_finite(select(dataset, "train", episodes=[0, 2]))  # the others are clean


def test_nan_in_an_iterable_batch_is_reported(tmp_path, toy_task):
    task = toy_task
    batch = {"observation": np.ones((4, 2)), "action": np.zeros((4, 1))}
    batch["observation"][2, 0] = np.inf
    prepared = inputs.prepare_batch(batch, task, ("observation", "action"))
    with pytest.raises(DataError, match=r"batch 7 of the input has non-finite observation"):
        inputs.check_batch_finite(prepared, 7)


def test_task_spec_maps_actions_both_ways_exactly():
    observation = {
        "kind": "dict",
        "fields": {
            "b": {"kind": "array", "shape": [3], "dtype": "float64", "name": "b"},
            "a": {"kind": "array", "shape": [], "dtype": "int32", "name": "a"},
        },
    }
    action = {
        "kind": "bounded",
        "shape": [2],
        "dtype": "float32",
        "minimum": [-2.0, 0.0],
        "maximum": [2.0, 10.0],
        "name": "action",
    }
    task = TaskSpec.from_specs(observation, action, env_name="toy")
    assert task.observation_keys == ("a", "b") and task.observation_size == 4
    flat = task.flatten_observation(
        {"b": np.array([1.0, 2.0, 3.0]), "a": np.int32(7)}, batched=False
    )
    assert flat.tolist() == [7.0, 1.0, 2.0, 3.0] and flat.dtype == np.float32
    normalised = task.normalize_actions(np.array([[2.0, 0.0], [0.0, 5.0]]))
    np.testing.assert_allclose(normalised, [[1.0, -1.0], [0.0, 0.0]])
    env_action = task.env_action(np.array([3.0, -0.5]))  # clipped to the bounds
    assert env_action.dtype == np.float32 and env_action.shape == (2,)
    np.testing.assert_allclose(env_action, [2.0, 2.5])
    assert TaskSpec.from_json(task.to_json()) == task
    with pytest.raises(SpecMismatchError, match="no field 'a'"):
        task.flatten_observation({"b": np.zeros(3)}, batched=False)


def test_unsupported_observations_and_actions_are_refused():
    image = {
        "kind": "dict",
        "fields": {
            "pixels": {"kind": "array", "shape": [8, 8, 3], "dtype": "uint8", "name": "pixels"}
        },
    }
    action = {
        "kind": "bounded",
        "shape": [1],
        "dtype": "float32",
        "minimum": -1.0,
        "maximum": 1.0,
        "name": "a",
    }
    with pytest.raises(DataError, match="image"):
        TaskSpec.from_specs(image, action)
    flat = {"kind": "array", "shape": [2], "dtype": "float32", "name": "o"}
    nested = {"kind": "dict", "fields": {"a": action}}
    with pytest.raises(DataError, match="one flat float action"):
        TaskSpec.from_specs(flat, nested)
    multi = {
        "kind": "bounded",
        "shape": [2],
        "dtype": "int64",
        "minimum": 0,
        "maximum": 3,
        "name": "a",
    }
    with pytest.raises(DataError, match="several discrete"):
        TaskSpec.from_specs(flat, multi)


def test_normaliser_uses_population_std_and_guards_constant_features(toy_task):
    task = toy_task
    stats = {"features": {"observation": {"mean": [1.0, 5.0], "std": [2.0, 1e-9]}}}
    normalizer = Normalizer.from_statistics(task, stats)
    np.testing.assert_allclose(normalizer(np.array([3.0, 5.5])), [1.0, 0.5])
    data = np.array([[0.0, 1.0], [2.0, 1.0]])
    np.testing.assert_allclose(Normalizer.from_arrays(data).std, [1.0, 1.0])  # ddof 0; const


def test_configs_refuse_unknown_options_and_wrong_types(tmp_path):
    with pytest.raises(LearnerError, match=r"unknown BCConfig option\(s\) \['learning_rat'\]"):
        config_lib.from_json(BCConfig, {"learning_rat": 1e-3})
    with pytest.raises(LearnerError, match="reward must be one of"):
        config_lib.from_json(AILConfig, {"reward": "wgan"})
    with pytest.raises(LearnerError, match="batch_size must be int"):
        config_lib.from_json(BCConfig, {"batch_size": "256"})
    path = tmp_path / "c.json"
    path.write_text('{"hidden_sizes": [64, 64], "learning_rate": 1}')
    loaded = config_lib.load(BCConfig, path, num_steps=10)
    assert loaded.hidden_sizes == (64, 64) and loaded.learning_rate == 1.0
    assert loaded.num_steps == 10
    path.write_text("[1, 2]")
    with pytest.raises(LearnerError, match="JSON object"):
        config_lib.load(BCConfig, path)


@pytest.fixture
def point_mass(point_mass_demos):
    return point_mass_demos


def test_bad_training_input_gets_clear_errors(point_mass, tmp_path):
    quiet = {"progress": False, "echo": lambda line: None}
    with pytest.raises(SpecMismatchError, match=r"action: bounded float64\[2\]"):
        train(
            "bc", dataset=point_mass, env="dm_control/cartpole-swingup", out=tmp_path / "a", **quiet
        )
    with pytest.raises(LearnerError, match="unknown algorithm 'gail'"):
        train(
            "gail",
            dataset=point_mass,
            env="dm_control/point_mass-easy",
            out=tmp_path / "b",
            **quiet,
        )
    with pytest.raises(DataError, match="no episode"):
        train(
            "bc",
            dataset=point_mass,
            env="dm_control/point_mass-easy",
            split="train[2:]",
            out=tmp_path / "c",
            **quiet,
        )
    empty = tmp_path / "empty"
    Recorder(nan_env(), empty, env_name="toy").close()
    with pytest.raises(DataError, match="no episode"):
        train("bc", dataset=empty, env="dm_control/point_mass-easy", out=tmp_path / "d", **quiet)
    with pytest.raises(LearnerError, match=r"needs continuous actions"):
        from rlds_hub.learners.ail.learning import AILLearner

        discrete = TaskSpec.from_specs(
            {"kind": "array", "shape": [2], "dtype": "float32", "name": "o"},
            {"kind": "discrete", "num_values": 3, "dtype": "int64", "name": "a"},
        )
        AILLearner(discrete, AILConfig(), Normalizer.identity(2))


def test_load_transitions_keeps_dataset_order(point_mass):
    from rlds_hub.storage import open_dataset

    dataset = open_dataset(point_mass)
    arrays = inputs.load_transitions(dataset, TaskSpec.from_dataset(dataset))
    assert len(arrays["observation"]) == 2000
    follows = np.all(arrays["next_observation"][:-1] == arrays["observation"][1:], axis=1)
    assert np.flatnonzero(~follows).tolist() == [999]  # only across the episode boundary
