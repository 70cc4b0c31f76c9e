"""Transitions and windows kernels against straightforward numpy references."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from rlds_hub import rlds_types
from rlds_hub import transforms as T
from rlds_hub.transforms import testing

FAST = settings(max_examples=40, deadline=None)


def reference_transitions(steps: dict[str, Any], n_step: int, gamma: float) -> dict[str, Any]:
    """Acme N-step transitions, one transition at a time (the formula, written plainly)."""
    rewards = np.asarray(steps[rlds_types.REWARD], np.float64)
    discounts = np.asarray(steps[rlds_types.DISCOUNT], np.float64)
    terminal = np.asarray(steps[rlds_types.IS_TERMINAL])
    num_transitions = len(rewards) - 1
    out: dict[str, list[Any]] = {"reward": [], "discount": [], "next_index": []}
    for i in range(num_transitions):
        m = min(n_step, num_transitions - i)
        total, weight = 0.0, 1.0
        for k in range(m):
            total += gamma**k * weight * rewards[i + k]
            weight *= discounts[i + k]
        discount = gamma ** (m - 1) * np.prod(discounts[i : i + m])
        if terminal[i + 1 : i + m + 1].any():
            discount = 0.0
        out["reward"].append(total)
        out["discount"].append(discount)
        out["next_index"].append(i + m)
    return {
        "reward": np.asarray(out["reward"], np.float64),
        "discount": np.asarray(out["discount"], np.float64),
        "next_index": np.asarray(out["next_index"], np.int64),
    }


def reference_windows(length: int, size: int, shift: int, pad: bool) -> list[list[int]]:
    """Step indices of each window (-1 for padding), enumerating starts one by one."""
    result = []
    start = 0
    while start < length:
        if start + size <= length or pad:
            result.append([i if i < length else -1 for i in range(start, start + size)])
        if start + size >= length:
            break
        start += shift
    return result


def assert_nested_equal(actual: Any, expected: Any) -> None:
    tf.nest.assert_same_structure(actual, expected)
    for a, e in zip(tf.nest.flatten(actual), tf.nest.flatten(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def take(field: Any, index: Any) -> Any:
    return tf.nest.map_structure(lambda x: np.asarray(x)[index], field)


episode_args = st.tuples(
    st.integers(0, 12),  # transitions
    st.booleans(),  # terminal
    st.integers(0, 2**16),  # seed
)


@FAST
@given(
    episode=episode_args,
    n_step=st.integers(1, 5),
    gamma=st.floats(0.0, 1.0),
    discount_values=st.lists(st.sampled_from([0.0, 0.5, 0.9, 1.0]), min_size=12, max_size=12),
    reward_dtype=st.sampled_from([np.float32, np.float64]),
)
def test_episode_transitions_match_reference(
    episode: tuple[int, bool, int],
    n_step: int,
    gamma: float,
    discount_values: list[float],
    reward_dtype: Any,
) -> None:
    num_transitions, terminal, seed = episode
    steps = testing.synthetic_steps(
        num_transitions,
        terminal=terminal,
        seed=seed,
        reward_dtype=reward_dtype,
        discounts=discount_values[:num_transitions],
    )
    result = T.episode_transitions(steps, n_step=n_step, gamma=gamma, extra_keys=["step_id"])
    expected = reference_transitions(steps, n_step, gamma)
    tolerance = 1e-12 if reward_dtype == np.float64 else 1e-5
    assert result["reward"].dtype == tf.as_dtype(reward_dtype)
    assert result["discount"].dtype == tf.as_dtype(reward_dtype)
    np.testing.assert_allclose(result["reward"], expected["reward"], rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(
        result["discount"], expected["discount"], rtol=tolerance, atol=tolerance
    )
    first = np.arange(num_transitions)
    assert_nested_equal(result["observation"], take(steps[rlds_types.OBSERVATION], first))
    assert_nested_equal(result["action"], take(steps[rlds_types.ACTION], first))
    assert_nested_equal(
        result["next_observation"], take(steps[rlds_types.OBSERVATION], expected["next_index"])
    )
    np.testing.assert_array_equal(result["step_id"], first)


def test_one_step_transitions_use_raw_discount_and_next_observation() -> None:
    steps = testing.synthetic_steps(3, terminal=True, nested=False, discounts=[0.5, 0.9, 1.0])
    result = T.episode_transitions(steps, gamma=0.5)
    np.testing.assert_allclose(result["reward"], steps[rlds_types.REWARD][:3])
    # d_i, no gamma for n_step=1 (the learner applies its own); 0 at the terminal step.
    np.testing.assert_allclose(result["discount"], [0.5, 0.9, 0.0])
    np.testing.assert_array_equal(result["next_observation"], steps[rlds_types.OBSERVATION][1:])


def test_truncated_episode_keeps_bootstrap_discount() -> None:
    steps = testing.synthetic_steps(4, terminal=False, nested=False)
    result = T.episode_transitions(steps, n_step=3, gamma=0.9)
    np.testing.assert_allclose(result["discount"], [0.81, 0.81, 0.9, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(
        result["next_observation"], steps[rlds_types.OBSERVATION][[3, 4, 4, 4]]
    )


def test_zero_filled_last_step_is_never_a_reward_source() -> None:
    steps = testing.synthetic_steps(2, terminal=False, nested=False)
    steps[rlds_types.REWARD][-1] = 1e6  # garbage in the meaningless slot
    result = T.episode_transitions(steps, n_step=4)
    assert np.all(np.abs(result["reward"]) < 1e3)


def test_single_step_episode_has_no_transitions() -> None:
    steps = testing.synthetic_steps(0, terminal=True)
    result = T.episode_transitions(steps, n_step=3, extra_keys=["step_id"])
    for leaf in tf.nest.flatten(result):
        assert leaf.shape[0] == 0


def test_integer_rewards_are_computed_in_float32() -> None:
    steps = testing.synthetic_steps(3, nested=False)
    steps[rlds_types.REWARD] = np.array([1, 2, 3, 0], np.int32)
    result = T.episode_transitions(steps, n_step=2)
    assert result["reward"].dtype == tf.float32
    np.testing.assert_allclose(result["reward"], [3.0, 5.0, 3.0])


def test_vector_rewards_broadcast_with_scalar_discounts() -> None:
    steps = testing.synthetic_steps(3, terminal=False, nested=False, discounts=[1.0, 0.5, 1.0])
    steps[rlds_types.REWARD] = np.array([[1, 10], [2, 20], [3, 30], [0, 0]], np.float32)
    result = T.episode_transitions(steps, n_step=2)
    np.testing.assert_allclose(result["reward"], [[3, 30], [3.5, 35], [3, 30]])
    assert result["discount"].shape == (3, 1)


@FAST
@given(
    length=st.integers(0, 11),
    size=st.integers(1, 6),
    shift=st.integers(1, 7),
    pad=st.booleans(),
)
def test_episode_windows_match_reference(length: int, size: int, shift: int, pad: bool) -> None:
    steps = testing.synthetic_steps(max(length - 1, 0), seed=length)
    if length == 0:
        steps = tf.nest.map_structure(lambda x: x[:0], steps)
    result = T.episode_windows(steps, size, shift=shift, pad=pad)
    expected = np.asarray(reference_windows(length, size, shift, pad), np.int64).reshape(-1, size)
    np.testing.assert_array_equal(result["mask"], expected >= 0)
    np.testing.assert_array_equal(result["step_id"], np.maximum(expected, 0))
    position = take(steps[rlds_types.OBSERVATION]["position"], np.maximum(expected, 0))
    position[expected < 0] = 0
    np.testing.assert_array_equal(result[rlds_types.OBSERVATION]["position"], position)
    assert result[rlds_types.ACTION][1].shape == (len(expected), size)


def test_windows_include_the_last_step_and_pad_short_episodes() -> None:
    steps = testing.synthetic_steps(2, seed=3)  # 3 steps
    result = T.episode_windows(steps, 5)
    np.testing.assert_array_equal(result["mask"], [[True, True, True, False, False]])
    np.testing.assert_array_equal(result[rlds_types.IS_LAST], [[False, False, True, False, False]])
    unpadded = T.episode_windows(steps, 5, pad=False)
    assert unpadded["mask"].shape == (0, 5)


@pytest.mark.parametrize("known_cardinality", [True, False])
def test_transitions_dataset_matches_per_episode_kernel(known_cardinality: bool) -> None:
    episodes = [testing.synthetic_steps(n, terminal=n % 2 == 0, seed=n) for n in (0, 4, 1, 6)]
    dataset = testing.episodes_dataset(episodes, known_cardinality=known_cardinality)
    result = list(T.transitions(dataset, n_step=3, gamma=0.9, extra_keys=["step_id"]))
    expected = []
    for steps in episodes:
        per_episode = T.episode_transitions(steps, n_step=3, gamma=0.9, extra_keys=["step_id"])
        count = len(per_episode["reward"])
        expected.extend(take(per_episode, i) for i in range(count))
    assert len(result) == len(expected) == 11
    for actual, wanted in zip(result, expected, strict=True):
        assert_nested_equal(actual, wanted)


def test_transitions_never_cross_episode_boundaries() -> None:
    episodes = [testing.synthetic_steps(n, terminal=False, seed=n) for n in (3, 2)]
    dataset = testing.episodes_dataset(episodes)
    step_ids = [int(t["step_id"]) for t in T.transitions(dataset, n_step=5, extra_keys=["step_id"])]
    assert step_ids == [0, 1, 2, 0, 1]
    nexts = [t["next_observation"]["position"] for t in T.transitions(dataset, n_step=5)]
    np.testing.assert_array_equal(nexts[2], episodes[0][rlds_types.OBSERVATION]["position"][3])
    np.testing.assert_array_equal(nexts[4], episodes[1][rlds_types.OBSERVATION]["position"][2])


def test_windows_dataset_concatenates_per_episode_windows() -> None:
    episodes = [testing.synthetic_steps(n, seed=n) for n in (0, 5, 2)]
    dataset = testing.episodes_dataset(episodes, known_cardinality=False)
    result = list(T.windows(dataset, 3, shift=2))
    expected = []
    for steps in episodes:
        per_episode = T.episode_windows(steps, 3, shift=2)
        expected.extend(take(per_episode, i) for i in range(len(per_episode["mask"])))
    assert len(result) == len(expected) == 1 + 3 + 1
    for actual, wanted in zip(result, expected, strict=True):
        assert_nested_equal(actual, wanted)
    assert T.windows(dataset, 4, pad=False).element_spec["mask"].shape == (4,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_step": 0}, "n_step"),
        ({"gamma": 1.5}, "gamma"),
        ({"gamma": -0.1}, "gamma"),
        ({"extra_keys": ["policy_logits"]}, "policy_logits"),
        ({"extra_keys": "step_id"}, "extra_keys"),
        ({"extra_keys": ["next_observation"]}, "clash"),
    ],
)
def test_transition_argument_errors(kwargs: dict[str, Any], message: str) -> None:
    steps = testing.synthetic_steps(2)
    dataset = testing.episodes_dataset([steps])
    with pytest.raises(ValueError, match=message):
        T.episode_transitions(steps, **kwargs)
    with pytest.raises(ValueError, match=message):
        T.transitions(dataset, **kwargs)


def test_missing_field_error_lists_available_fields() -> None:
    steps = testing.synthetic_steps(2)
    del steps[
        rlds_types.IS_TERMINAL
    ]  # (a missing discount reads as 1: tests/data/test_oxe_fractal.py)
    with pytest.raises(ValueError, match=r"'is_terminal'.*available fields: \['action'"):
        T.episode_transitions(steps)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"size": 0}, "size"), ({"size": 2, "shift": 0}, "shift"), ({"size": 2.5}, "size")],
)
def test_window_argument_errors(kwargs: dict[str, Any], message: str) -> None:
    steps = testing.synthetic_steps(2)
    with pytest.raises(ValueError, match=message):
        T.episode_windows(steps, **kwargs)
    with pytest.raises(ValueError, match=message):
        T.windows(testing.episodes_dataset([steps]), **kwargs)


def test_windows_refuse_to_overwrite_a_mask_field() -> None:
    steps = testing.synthetic_steps(2)
    steps["mask"] = np.ones(3, bool)
    with pytest.raises(ValueError, match="mask"):
        T.episode_windows(steps, 2)


def test_episodes_without_steps_give_nothing() -> None:
    episodes = [testing.synthetic_steps(2, seed=1), testing.synthetic_steps(1, seed=2)]
    dataset = testing.episodes_dataset(episodes, known_cardinality=False)
    # Drop every step of the second episode, as a filter might.
    emptied = dataset.map(
        lambda e: {
            **e,
            rlds_types.STEPS: e[rlds_types.STEPS].filter(lambda _: e["episode_index"] == 0),
        }
    )
    assert len(list(T.transitions(emptied))) == 2
    assert len(list(T.windows(emptied, 2))) == 2
    batches = [T.steps_to_batch(e[rlds_types.STEPS]) for e in emptied]
    assert [len(b["step_id"]) for b in batches] == [3, 0]
    assert batches[1][rlds_types.OBSERVATION]["pixels"].shape == (0, 2, 2, 1)


def test_string_fields_are_windowed_and_carried_as_extras() -> None:
    steps = testing.synthetic_steps(2, seed=4)
    steps["instruction"] = np.array([b"pick", b"place", b""])
    windows = T.episode_windows(steps, 2, shift=2)
    assert windows["instruction"].numpy().tolist() == [[b"pick", b"place"], [b"", b""]]
    result = T.episode_transitions(steps, extra_keys=["instruction"])
    assert result["instruction"].numpy().tolist() == [b"pick", b"place"]
