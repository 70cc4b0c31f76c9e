"""Mean and standard deviation of step fields over a dataset of episodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from rlds_hub import rlds_types
from rlds_hub.transforms import flexible_batch, shape_ops
from rlds_hub.transforms._checks import guard_missing_keys
from rlds_hub.transforms.nested_ops import vectorized

StepFields = tuple[dict[str, Any], dict[str, Any]]


def sar_fields_mask(step: dict[str, Any]) -> StepFields:
    """Returns (observation, action, reward) of a SAR step and which of them are valid.

    For :func:`mean_and_std` on RLDS steps: the action and reward of the last step are
    zero-filled, so they are masked out there.
    """
    data = {
        key: step[key] for key in (rlds_types.OBSERVATION, rlds_types.ACTION, rlds_types.REWARD)
    }
    not_last = tf.logical_not(tf.cast(step[rlds_types.IS_LAST], tf.bool))
    mask = {
        rlds_types.OBSERVATION: tf.constant(True),
        rlds_types.ACTION: not_last,
        rlds_types.REWARD: not_last,
    }
    return data, mask


def _batch_moments(values: Any, mask: tf.Tensor) -> tuple[tf.Tensor, Any, Any]:
    """Count, mean and sum of squared deviations (float64) of the masked rows of a batch."""
    mask = tf.cast(tf.reshape(mask, [-1]), tf.bool)
    count = tf.reduce_sum(tf.cast(mask, tf.float64))

    def valid_rows(x: tf.Tensor) -> tf.Tensor:
        return tf.reshape(mask, [-1] + [1] * (x.shape.rank - 1))

    def mean_of(x: tf.Tensor) -> tf.Tensor:
        # tf.where rather than a product: masked-out values may be inf or NaN.
        x = tf.cast(x, tf.float64)
        return tf.reduce_sum(tf.where(valid_rows(x), x, 0.0), axis=0) / tf.maximum(count, 1.0)

    def m2_of(x: tf.Tensor, mean: tf.Tensor) -> tf.Tensor:
        deviation = tf.square(tf.cast(x, tf.float64) - mean)
        return tf.reduce_sum(tf.where(valid_rows(x), deviation, 0.0), axis=0)

    means = tf.nest.map_structure(mean_of, values)
    return count, means, tf.nest.map_structure(m2_of, values, means)


def _combine(a: tuple[Any, Any, Any], b: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
    """Merges two (count, mean, m2) summaries (Chan et al.'s parallel variance update)."""
    count_a, mean_a, m2_a = a
    count_b, mean_b, m2_b = b
    count = count_a + count_b
    share_b = count_b / tf.maximum(count, 1.0)
    cross = count_a * share_b

    def merge_mean(ma: tf.Tensor, mb: tf.Tensor) -> tf.Tensor:
        return ma + (mb - ma) * share_b

    def merge_m2(ma: tf.Tensor, mb: tf.Tensor, sa: tf.Tensor, sb: tf.Tensor) -> tf.Tensor:
        return sa + sb + tf.square(mb - ma) * cross

    mean = tf.nest.map_structure(merge_mean, mean_a, mean_b)
    m2 = tf.nest.map_structure(merge_m2, mean_a, mean_b, m2_a, m2_b)
    return count, mean, m2


def mean_and_std(
    episodes_dataset: tf.data.Dataset,
    get_step_fields: Callable[[dict[str, Any]], StepFields],
    optimization_batch_size: int = flexible_batch.BATCH_AUTO_TUNE,
) -> tuple[Any, Any]:
    """Returns the per-element mean and sample std (float64) of step fields over all steps.

    ``get_step_fields(step)`` returns ``(data, mask)``: ``data`` a dict of numeric fields
    (each may be a nest) and ``mask`` a dict with, for each key of ``data``, a bool saying
    whether that field is valid in this step (see :func:`sar_fields_mask`). The results keep
    the structure and shapes of ``data``. The std divides by (count - 1); a field with fewer
    than two valid steps gets NaN. One pass over the data, merging per-batch moments.
    """
    batch_size = max(1, flexible_batch.get_batch_size(episodes_dataset, optimization_batch_size))
    per_step = vectorized(guard_missing_keys(get_step_fields))

    @tf.autograph.experimental.do_not_convert
    def summarise(batch: dict[str, Any]) -> dict[str, Any]:
        data, mask = per_step(batch)
        return {key: _batch_moments(data[key], mask[key]) for key in data}

    steps = episodes_dataset.flat_map(lambda episode: episode[rlds_types.STEPS])
    summaries = steps.batch(batch_size).map(summarise, num_parallel_calls=tf.data.AUTOTUNE)
    initial = shape_ops.zeros_from_spec(summaries.element_spec)

    def merge(total: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        return {key: _combine(total[key], summary[key]) for key in total}

    result = summaries.reduce(initial, merge)
    nan = tf.constant(float("nan"), tf.float64)
    mean, std = {}, {}
    for key, (count, field_mean, field_m2) in result.items():
        mean[key] = tf.nest.map_structure(
            lambda m, count=count: tf.where(count > 0, m, nan), field_mean
        )
        std[key] = tf.nest.map_structure(
            lambda m2, count=count: tf.where(
                count > 1, tf.sqrt(m2 / tf.maximum(count - 1.0, 1.0)), nan
            ),
            field_m2,
        )
    return mean, std
