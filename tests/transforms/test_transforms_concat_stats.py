"""rlds.transformations' concatenation, truncation and statistics, re-implemented."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from rlds_hub import rlds_types
from rlds_hub import transforms as T
from rlds_hub.transforms import testing


def test_concatenate_fills_missing_fields_with_zeros() -> None:
    first = tf.data.Dataset.from_tensor_slices({"a": [1, 2], "obs": {"x": [[1.0], [2.0]]}})
    second = tf.data.Dataset.from_tensor_slices({"a": [3], "b": [[True, True]]})
    result = list(T.concatenate(first, second).as_numpy_iterator())
    assert [int(s["a"]) for s in result] == [1, 2, 3]
    assert [s["b"].tolist() for s in result] == [[False, False], [False, False], [True, True]]
    assert [s["obs"]["x"].tolist() for s in result] == [[1.0], [2.0], [0.0]]


def test_concatenate_needs_dict_elements() -> None:
    with pytest.raises(ValueError, match="dicts"):
        T.concatenate(tf.data.Dataset.range(2), tf.data.Dataset.range(2))


def absorbing_step(last: dict[str, Any]) -> tf.data.Dataset:
    """One absorbing step after a terminal one: same observation, marked as absorbing."""
    step = tf.nest.map_structure(tf.zeros_like, last)
    step[rlds_types.OBSERVATION] = last[rlds_types.OBSERVATION]
    step["absorbing"] = tf.constant(True)
    return tf.data.Dataset.from_tensors(step)


@pytest.mark.parametrize("known_cardinality", [True, False])
def test_concat_if_terminal_adds_steps_only_to_terminated_episodes(known_cardinality: bool) -> None:
    episodes = [
        testing.synthetic_steps(n, terminal=terminal) for n, terminal in ((2, True), (3, False))
    ]
    dataset = testing.episodes_dataset(episodes, known_cardinality=known_cardinality)
    result = T.apply_nested_steps(
        dataset, lambda steps: T.concat_if_terminal(steps, absorbing_step)
    )
    terminated, truncated = testing.to_numpy(result)
    assert [bool(s["absorbing"]) for s in terminated[rlds_types.STEPS]] == [False] * 3 + [True]
    assert [bool(s["absorbing"]) for s in truncated[rlds_types.STEPS]] == [False] * 4
    np.testing.assert_array_equal(
        terminated[rlds_types.STEPS][-1][rlds_types.OBSERVATION]["position"],
        episodes[0][rlds_types.OBSERVATION]["position"][-1],
    )


def test_concat_if_terminal_works_eagerly_and_checks_the_field() -> None:
    steps = tf.data.Dataset.from_tensor_slices(testing.synthetic_steps(1, terminal=True))
    assert len(list(T.concat_if_terminal(steps, absorbing_step))) == 3
    no_flag = steps.map(lambda s: {k: v for k, v in s.items() if k != rlds_types.IS_TERMINAL})
    with pytest.raises(ValueError, match="is_terminal"):
        T.concat_if_terminal(no_flag, absorbing_step)


@pytest.mark.parametrize(
    ("threshold", "expected"), [(2, [0, 1, 2]), (0, [0]), (10, [0, 1, 2, 3, 4])]
)
def test_truncate_after_condition_keeps_the_matching_step(
    threshold: int, expected: list[int]
) -> None:
    steps = tf.data.Dataset.from_tensor_slices({"step_id": np.arange(5), "x": np.arange(5) * 2.0})
    truncated = T.truncate_after_condition(steps, lambda step: step["step_id"] >= threshold)
    assert [int(s["step_id"]) for s in truncated] == expected


def test_truncate_after_condition_inside_nested_steps() -> None:
    episodes = [testing.synthetic_steps(n, seed=n) for n in (4, 1)]
    dataset = testing.episodes_dataset(episodes)

    def at_step_two(steps: tf.data.Dataset) -> tf.data.Dataset:
        return T.truncate_after_condition(steps, lambda step: step["step_id"] == 2)

    result = testing.to_numpy(T.apply_nested_steps(dataset, at_step_two))
    assert [len(e[rlds_types.STEPS]) for e in result] == [3, 2]


@pytest.mark.parametrize("batch_size", [1, 3, T.BATCH_AUTO_TUNE])
def test_mean_and_std_with_sar_mask_matches_numpy(batch_size: int) -> None:
    episodes = [testing.synthetic_steps(n, seed=n) for n in (0, 4, 2, 7)]
    dataset = testing.episodes_dataset(episodes)
    mean, std = T.mean_and_std(dataset, T.sar_fields_mask, batch_size)

    def gather(path: Any, live_only: bool) -> np.ndarray:
        parts = [path(e)[:-1] if live_only else path(e) for e in episodes]
        return np.concatenate(parts).astype(np.float64)

    checks = [
        (
            mean[rlds_types.OBSERVATION]["position"],
            std[rlds_types.OBSERVATION]["position"],
            gather(lambda e: e[rlds_types.OBSERVATION]["position"], False),
        ),
        (
            mean[rlds_types.OBSERVATION]["pixels"],
            std[rlds_types.OBSERVATION]["pixels"],
            gather(lambda e: e[rlds_types.OBSERVATION]["pixels"], False),
        ),
        (
            mean[rlds_types.ACTION][0],
            std[rlds_types.ACTION][0],
            gather(lambda e: e[rlds_types.ACTION][0], True),
        ),
        (
            mean[rlds_types.ACTION][1],
            std[rlds_types.ACTION][1],
            gather(lambda e: e[rlds_types.ACTION][1], True),
        ),
        (
            mean[rlds_types.REWARD],
            std[rlds_types.REWARD],
            gather(lambda e: e[rlds_types.REWARD], True),
        ),
    ]
    for got_mean, got_std, values in checks:
        assert got_mean.dtype == tf.float64 and got_std.dtype == tf.float64
        np.testing.assert_allclose(got_mean, values.mean(axis=0), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got_std, values.std(axis=0, ddof=1), rtol=1e-9, atol=1e-9)


def test_mean_and_std_accepts_python_conditions_and_ignores_masked_garbage() -> None:
    steps = testing.synthetic_steps(3, nested=False)
    steps[rlds_types.REWARD][-1] = np.inf  # zero-filled slot holding garbage: must not leak
    dataset = testing.episodes_dataset([steps])

    def reward_only(step: dict[str, Any]) -> Any:
        return {"reward": step[rlds_types.REWARD]}, {"reward": not step[rlds_types.IS_LAST]}

    mean, std = T.mean_and_std(dataset, reward_only)
    np.testing.assert_allclose(mean["reward"], steps[rlds_types.REWARD][:3].mean(), rtol=1e-6)
    np.testing.assert_allclose(std["reward"], steps[rlds_types.REWARD][:3].std(ddof=1), rtol=1e-5)


def test_mean_and_std_is_nan_without_enough_valid_steps() -> None:
    dataset = testing.episodes_dataset([testing.synthetic_steps(0), testing.synthetic_steps(1)])
    mean, std = T.mean_and_std(dataset, T.sar_fields_mask)
    assert np.isfinite(mean[rlds_types.REWARD]) and np.isnan(
        std[rlds_types.REWARD]
    )  # one valid reward
    empty = testing.episodes_dataset([testing.synthetic_steps(0)])
    mean, std = T.mean_and_std(empty, T.sar_fields_mask)
    assert np.isnan(mean[rlds_types.REWARD]) and np.isnan(std[rlds_types.REWARD])


def test_sar_fields_mask_masks_action_and_reward_of_the_last_step() -> None:
    step = testing.synthetic_steps(0)
    last = tf.nest.map_structure(lambda x: tf.constant(x[0]), step)
    data, mask = T.sar_fields_mask(last)
    assert set(data) == {rlds_types.OBSERVATION, rlds_types.ACTION, rlds_types.REWARD}
    assert bool(mask[rlds_types.OBSERVATION]) and not bool(mask[rlds_types.ACTION])
    assert not bool(mask[rlds_types.REWARD])


def test_mean_and_std_names_a_missing_field() -> None:
    dataset = testing.episodes_dataset([testing.synthetic_steps(2)])
    with pytest.raises(ValueError, match="'state'"):
        T.mean_and_std(dataset, lambda step: ({"s": step["state"]}, {"s": True}))
