"""rlds.transformations' nested-step maps, sums, queries and spec helpers, re-implemented."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from rlds_hub import rlds_types
from rlds_hub import transforms as T
from rlds_hub.transforms import flexible_batch, shape_ops, testing

LENGTHS = (0, 3, 1, 5)  # transitions per episode: steps are one more


@pytest.fixture(scope="module")
def episodes() -> list[dict[str, Any]]:
    return [testing.synthetic_steps(n, terminal=n % 2 == 1, seed=n) for n in LENGTHS]


@pytest.fixture(scope="module", params=[True, False], ids=["known", "unknown"])
def dataset(request: pytest.FixtureRequest, episodes: list[dict[str, Any]]) -> tf.data.Dataset:
    metadata = {"agent": np.array([b"a", b"b", b"c", b"d"])}
    return testing.episodes_dataset(episodes, metadata=metadata, known_cardinality=request.param)


def double_reward(step: dict[str, Any]) -> dict[str, Any]:
    step = dict(step)
    step[rlds_types.REWARD] = step[rlds_types.REWARD] * 2
    return step


@pytest.mark.parametrize("batch_size", [1, 2, T.BATCH_AUTO_TUNE])
def test_map_nested_steps_transforms_every_step_and_keeps_metadata(
    dataset: tf.data.Dataset, episodes: list[dict[str, Any]], batch_size: int
) -> None:
    mapped = testing.to_numpy(T.map_nested_steps(dataset, double_reward, batch_size))
    assert [e["agent"] for e in mapped] == [b"a", b"b", b"c", b"d"]
    for episode, steps in zip(mapped, episodes, strict=True):
        rewards = [s[rlds_types.REWARD] for s in episode[rlds_types.STEPS]]
        np.testing.assert_allclose(rewards, steps[rlds_types.REWARD] * 2)
        positions = [s[rlds_types.OBSERVATION]["position"] for s in episode[rlds_types.STEPS]]
        np.testing.assert_array_equal(positions, steps[rlds_types.OBSERVATION]["position"])


@pytest.mark.parametrize("batch_size", [1, 3, T.BATCH_AUTO_TUNE])
def test_map_steps_may_return_non_steps(batch_size: int) -> None:
    steps = tf.data.Dataset.from_tensor_slices(testing.synthetic_steps(4))

    def summary(step: dict[str, Any]) -> Any:
        # Python control flow on a tensor works (AutoGraph), as with Dataset.map.
        if step[rlds_types.IS_LAST]:
            value = tf.constant(-1.0)
        else:
            value = step[rlds_types.REWARD]
        return value, tf.reduce_sum(step[rlds_types.OBSERVATION]["position"])

    result = list(T.map_steps(steps, summary, batch_size))
    assert len(result) == 5
    assert float(result[-1][0]) == -1.0


@pytest.mark.parametrize("batch_size", [1, T.BATCH_AUTO_TUNE])
def test_maps_name_a_missing_field(dataset: tf.data.Dataset, batch_size: int) -> None:
    with pytest.raises(ValueError, match=r"no field 'rewards'.*'reward'"):
        T.map_nested_steps(dataset, lambda step: step["rewards"], batch_size)
    steps = dataset.flat_map(lambda e: e[rlds_types.STEPS])
    with pytest.raises(ValueError, match=r"no field 'pos'.*'observation/position'"):
        T.map_steps(steps, lambda step: step[rlds_types.OBSERVATION]["pos"], batch_size)


def test_apply_nested_steps_replaces_the_steps_dataset(dataset: tf.data.Dataset) -> None:
    result = testing.to_numpy(T.apply_nested_steps(dataset, lambda steps: steps.take(2)))
    assert [len(e[rlds_types.STEPS]) for e in result] == [1, 2, 2, 2]
    assert [e["episode_index"] for e in result] == [0, 1, 2, 3]


def test_apply_nested_steps_converts_python_control_flow(dataset: tf.data.Dataset) -> None:
    def keep_long_episodes_whole(steps: tf.data.Dataset) -> tf.data.Dataset:
        if T.episode_length(steps) > 2:  # a tensor condition: needs AutoGraph
            result = steps
        else:
            result = steps.take(0)
        return result

    result = T.apply_nested_steps(dataset, keep_long_episodes_whole)
    assert [len(e[rlds_types.STEPS]) for e in testing.to_numpy(result)] == [0, 4, 0, 6]


@pytest.mark.parametrize("batch_size", [1, 4, T.BATCH_AUTO_TUNE])
def test_sum_nested_steps_and_sum_dataset(
    dataset: tf.data.Dataset, episodes: list[dict[str, Any]], batch_size: int
) -> None:
    def data_to_sum(step: dict[str, Any]) -> dict[str, Any]:
        return {
            "reward": step[rlds_types.REWARD],
            "steps": tf.constant(1),
            "position": step[rlds_types.OBSERVATION]["position"],
        }

    total = T.sum_nested_steps(dataset, data_to_sum, batch_size)
    np.testing.assert_allclose(
        total["reward"], sum(e[rlds_types.REWARD].sum() for e in episodes), 1e-5
    )
    assert int(total["steps"]) == sum(n + 1 for n in LENGTHS)
    expected_position = sum(e[rlds_types.OBSERVATION]["position"].sum(0) for e in episodes)
    np.testing.assert_allclose(total["position"], expected_position, rtol=1e-5)
    empty = T.sum_dataset(tf.data.Dataset.range(0), lambda x: x * 2, batch_size)
    assert int(empty) == 0


def test_final_step_and_episode_length(
    dataset: tf.data.Dataset, episodes: list[dict[str, Any]]
) -> None:
    def summarise(episode: dict[str, Any]) -> Any:
        last = T.final_step(episode[rlds_types.STEPS])
        return (
            last["step_id"],
            last[rlds_types.IS_LAST],
            T.episode_length(episode[rlds_types.STEPS]),
        )

    inside_map = list(dataset.map(summarise).as_numpy_iterator())
    assert inside_map == [(n, True, n + 1) for n in LENGTHS]
    for episode, steps in zip(dataset, episodes, strict=True):  # eagerly
        last = T.final_step(episode[rlds_types.STEPS])
        np.testing.assert_array_equal(
            last[rlds_types.OBSERVATION]["pixels"], steps[rlds_types.OBSERVATION]["pixels"][-1]
        )
        assert T.episode_length(episode[rlds_types.STEPS]).dtype == tf.int32
        assert int(T.episode_length(episode[rlds_types.STEPS], 1)) == len(steps["step_id"])
        assert int(T.episode_length(episode[rlds_types.STEPS], 2)) == len(steps["step_id"])


@pytest.mark.parametrize("known_cardinality", [True, False])
def test_final_step_of_an_empty_dataset_is_zeros(known_cardinality: bool) -> None:
    steps = tf.data.Dataset.from_tensor_slices({"a": tf.ones([0, 2])})
    if not known_cardinality:
        steps = steps.filter(lambda _: True)
    np.testing.assert_array_equal(T.final_step(steps)["a"], [0.0, 0.0])
    assert int(T.episode_length(steps)) == 0


def test_zeros_from_spec_follows_the_spec() -> None:
    element_spec = {
        "obs": tf.TensorSpec([None, 3], tf.float32),
        "flags": (tf.TensorSpec([], tf.bool), tf.TensorSpec([2], tf.string)),
    }
    zeros = T.zeros_from_spec(element_spec)
    assert zeros["obs"].shape == (1, 3) and zeros["obs"].dtype == tf.float32
    assert not bool(zeros["flags"][0])
    assert zeros["flags"][1].numpy().tolist() == [b"", b""]


def test_uniform_from_spec_draws_in_range_for_every_numeric_dtype() -> None:
    element_spec = {
        "f": tf.TensorSpec([None, 50], tf.float32),
        "i": tf.TensorSpec([50], tf.int64),
        "u": tf.TensorSpec([50], tf.uint8),
    }
    values = T.uniform_from_spec(element_spec, minval=2, maxval=5, seed=1)
    assert values["f"].shape == (1, 50)
    for leaf in tf.nest.flatten(values):
        array = leaf.numpy()
        assert array.min() >= 2 and array.max() < 5
    assert values["u"].dtype == tf.uint8
    with pytest.raises(TypeError, match="string"):
        T.uniform_from_spec(tf.TensorSpec([], tf.string), 0, 1, 0)


def test_zero_dataset_like_has_one_zero_element_of_the_same_spec() -> None:
    steps = tf.data.Dataset.from_tensor_slices(testing.synthetic_steps(2))
    zeros = T.zero_dataset_like(steps)
    assert zeros.element_spec == steps.element_spec
    (element,) = list(zeros)
    assert all(not np.any(leaf.numpy()) for leaf in tf.nest.flatten(element))


def test_auto_batch_size_targets_200kb_per_batch() -> None:
    steps = tf.data.Dataset.from_tensor_slices({"image": tf.zeros([2, 100, 100, 4], tf.uint8)})
    assert flexible_batch.get_batch_size(steps) == 5
    assert flexible_batch.get_batch_size(steps, 7) == 7
    episodes = tf.data.Dataset.range(1).map(lambda _: {rlds_types.STEPS: steps})
    assert flexible_batch.get_batch_size(episodes) == 5
    assert shape_ops.size_from_spec(tf.TensorSpec([None], tf.float32)) == sys.maxsize


def add_one_in_place(step: dict[str, Any]) -> dict[str, Any]:
    """As rlds's own docs write step functions: modify the step, return it."""
    step[rlds_types.REWARD] += 1
    step[rlds_types.OBSERVATION]["position"] = step[rlds_types.OBSERVATION]["position"] * 0
    return step


# batch 1 stays in make test-fast; batched and auto-tuned (3-4 s each) run in make test.
@pytest.mark.parametrize(
    "batch_size",
    [1, *(pytest.param(size, marks=pytest.mark.slow) for size in (2, T.BATCH_AUTO_TUNE))],
)
def test_step_functions_may_modify_their_step_in_place(
    dataset: tf.data.Dataset, episodes: list[dict[str, Any]], batch_size: int
) -> None:
    mapped = testing.to_numpy(T.map_nested_steps(dataset, add_one_in_place, batch_size))
    for episode, steps in zip(mapped, episodes, strict=True):
        rewards = [s[rlds_types.REWARD] for s in episode[rlds_types.STEPS]]
        np.testing.assert_allclose(rewards, steps[rlds_types.REWARD] + 1)
        assert all(
            not np.any(s[rlds_types.OBSERVATION]["position"]) for s in episode[rlds_types.STEPS]
        )
    flat = dataset.flat_map(lambda e: e[rlds_types.STEPS])
    total = T.sum_dataset(
        T.map_steps(flat, add_one_in_place, batch_size), lambda step: step[rlds_types.REWARD]
    )
    expected = sum(float(np.sum(s[rlds_types.REWARD] + 1)) for s in episodes)
    assert float(total) == pytest.approx(expected)
    # the input dataset itself is unchanged
    again = testing.to_numpy(dataset)
    np.testing.assert_allclose(
        [s[rlds_types.REWARD] for s in again[1][rlds_types.STEPS]], episodes[1][rlds_types.REWARD]
    )


def test_rlds_module_level_helpers_are_kept(dataset: tf.data.Dataset) -> None:
    from rlds_hub.transforms import nested_ops

    def through_helper(episode):
        return nested_ops._map_episode(episode, add_one_in_place, in_place=False)

    mapped = testing.to_numpy(dataset.map(through_helper))
    assert [e["agent"] for e in mapped] == [b"a", b"b", b"c", b"d"]
    assert nested_ops._get_episode_metadata({"steps": 1, "agent": 2}) == {"agent": 2}
    applied = testing.to_numpy(
        dataset.map(
            lambda e: nested_ops._apply_episode(e, lambda steps: steps.take(1), in_place=True)
        )
    )
    assert [len(e[rlds_types.STEPS]) for e in applied] == [1, 1, 1, 1]


def test_batched_map_applies_a_function_to_batches_of_steps(dataset: tf.data.Dataset) -> None:
    from rlds_hub.transforms.batched_helpers import batched_map

    steps = dataset.flat_map(lambda e: e[rlds_types.STEPS])
    for size in (1, 3, T.BATCH_AUTO_TUNE):
        mapped = batched_map(steps, add_one_in_place, size=size)
        got = [float(s[rlds_types.REWARD]) for s in mapped.as_numpy_iterator()]
        expected = [float(s[rlds_types.REWARD]) + 1 for s in steps.as_numpy_iterator()]
        assert got == pytest.approx(expected)
