"""rlds.transformations' batch, shift_keys and alignment helpers, re-implemented."""

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


def as_lists(dataset: tf.data.Dataset) -> list[Any]:
    return [np.asarray(x).tolist() for x in dataset]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"size": 2, "shift": 1}, [[1, 2], [2, 3], [3, 4], [4]]),
        ({"size": 2, "shift": 1, "drop_remainder": True}, [[1, 2], [2, 3], [3, 4]]),
        ({"size": 2, "shift": 2}, [[1, 2], [3, 4]]),
        ({"size": 2, "shift": 1, "stride": 2}, [[1, 3], [2, 4], [3], [4]]),
        ({"size": 3}, [[1, 2, 3], [4]]),
        ({"size": 3, "drop_remainder": True}, [[1, 2, 3]]),
        ({}, [[1, 2, 3, 4]]),  # BATCH_AUTO_TUNE: small elements fit in one batch
    ],
)
def test_batch_matches_documented_examples(kwargs: dict[str, Any], expected: list[Any]) -> None:
    assert as_lists(T.batch(tf.data.Dataset.range(1, 5), **kwargs)) == expected


def test_batch_keeps_nested_structure() -> None:
    steps = testing.synthetic_steps(3)
    dataset = tf.data.Dataset.from_tensor_slices(steps)
    batches = list(T.batch(dataset, size=3, shift=1))
    assert [len(b["step_id"]) for b in batches] == [3, 3, 2, 1]
    np.testing.assert_array_equal(
        batches[1][rlds_types.OBSERVATION]["pixels"], steps[rlds_types.OBSERVATION]["pixels"][1:4]
    )
    np.testing.assert_array_equal(
        batches[2][rlds_types.ACTION][1], steps[rlds_types.ACTION][1][2:4]
    )


@pytest.mark.parametrize("kwargs", [{"size": 0}, {"size": 2, "shift": -1}, {"stride": 0}])
def test_batch_rejects_non_positive_sizes(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        T.batch(tf.data.Dataset.range(4), **kwargs)


def reference_shift(steps: dict[str, Any], keys: list[str], shift: int) -> dict[str, Any]:
    length = len(steps["step_id"])
    count = length - abs(shift)
    result = {}
    for key, value in steps.items():
        moved = key in keys
        offset = max(shift, 0) if moved else max(-shift, 0)
        result[key] = tf.nest.map_structure(lambda x, o=offset: x[o : o + count], value)
    return result


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(
    length=st.integers(1, 14),
    shift=st.integers(-4, 4).filter(bool),
    extra_batch=st.one_of(st.just(None), st.integers(1, 5)),
    keys=st.sampled_from([[rlds_types.ACTION], [rlds_types.REWARD, rlds_types.OBSERVATION]]),
)
def test_shift_keys_matches_reference(
    length: int, shift: int, extra_batch: int | None, keys: list[str]
) -> None:
    steps = testing.synthetic_steps(length - 1, seed=length)
    batch_size = T.BATCH_AUTO_TUNE if extra_batch is None else abs(shift) + extra_batch
    dataset = tf.data.Dataset.from_tensor_slices(steps)
    shifted = list(T.shift_keys(dataset, keys, shift, batch_size=batch_size))
    expected = reference_shift(steps, keys, shift)
    assert len(shifted) == max(length - abs(shift), 0)
    for i, step in enumerate(shifted):
        for key in steps:
            for a, e in zip(
                tf.nest.flatten(step[key]), tf.nest.flatten(expected[key]), strict=True
            ):
                np.testing.assert_array_equal(a, e[i])


def test_shift_keys_pairs_each_observation_with_the_next_reward() -> None:
    steps = {"observation": np.arange(5), "reward": np.arange(5) * 10}
    dataset = tf.data.Dataset.from_tensor_slices(steps)
    forward = list(T.shift_keys(dataset, ["reward"], 1))
    assert [(int(s["observation"]), int(s["reward"])) for s in forward] == [
        (0, 10),
        (1, 20),
        (2, 30),
        (3, 40),
    ]
    backward = list(T.shift_keys(dataset, ["reward"], -2, batch_size=3))
    assert [(int(s["observation"]), int(s["reward"])) for s in backward] == [
        (2, 0),
        (3, 10),
        (4, 20),
    ]


def test_shift_keys_inside_nested_steps() -> None:
    episodes = [testing.synthetic_steps(n, seed=n) for n in (3, 1)]
    dataset = testing.episodes_dataset(episodes)
    shifted = T.apply_nested_steps(dataset, lambda steps: T.shift_keys(steps, ["step_id"], 1))
    ids = [[int(s["step_id"]) for s in e["steps"]] for e in shifted]
    assert ids == [[1, 2, 3], [1]]


def test_shift_keys_errors() -> None:
    dataset = tf.data.Dataset.from_tensor_slices(testing.synthetic_steps(3))
    with pytest.raises(ValueError, match=r"'rewards'.*available fields: \['action'"):
        T.shift_keys(dataset, ["rewards"], 1)
    with pytest.raises(ValueError, match="batch size"):
        T.shift_keys(dataset, [rlds_types.REWARD], 3, batch_size=3)


def test_shift_keys_by_zero_is_identity() -> None:
    dataset = tf.data.Dataset.range(3).map(lambda i: {"a": i, "b": i})
    assert len(list(T.shift_keys(dataset, ["a"], 0))) == 3


def test_alignment_types_and_tagging() -> None:
    assert [a.value for a in T.AlignmentType] == [1, 2, 3, 4]
    assert [a.name for a in T.AlignmentType] == ["UNKNOWN", "SAR", "ARS", "RSA"]
    step = {"reward": tf.constant(1.0)}
    assert T.add_alignment_to_step(step, T.AlignmentType.ARS) is step
    assert step[rlds_types.ALIGNMENT] == T.AlignmentType.ARS.value
    dataset = tf.data.Dataset.from_tensor_slices({"reward": [1.0, 2.0]})
    tagged = dataset.map(lambda s: T.add_alignment_to_step(s, T.AlignmentType.SAR))
    assert [int(s[rlds_types.ALIGNMENT]) for s in tagged] == [2, 2]
