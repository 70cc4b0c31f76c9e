"""Concatenation and truncation of datasets of steps."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

from rlds_hub import rlds_types
from rlds_hub.transforms import nested_ops, shape_ops
from rlds_hub.transforms._checks import check_keys


def _with_missing_fields(step: Mapping[str, Any], other_spec: Mapping[str, Any]) -> dict[str, Any]:
    """Returns ``step`` plus zeros for the top-level fields of ``other_spec`` it lacks."""
    step = dict(step)
    for key, field_spec in other_spec.items():
        if key not in step:
            step[key] = shape_ops.zeros_from_spec(field_spec)
    return step


def concatenate(steps1: tf.data.Dataset, steps2: tf.data.Dataset) -> tf.data.Dataset:
    """Returns the steps of ``steps1`` followed by those of ``steps2``.

    Elements must be dicts. A top-level field present in only one dataset is added to the
    elements of the other as zeros, so both have the same structure.
    """
    spec1, spec2 = steps1.element_spec, steps2.element_spec
    if not isinstance(spec1, Mapping) or not isinstance(spec2, Mapping):
        raise ValueError("concatenate expects datasets whose elements are dicts of fields")
    if not set(spec2) <= set(spec1):
        steps1 = steps1.map(lambda step: _with_missing_fields(step, spec2))
    if not set(spec1) <= set(spec2):
        steps2 = steps2.map(lambda step: _with_missing_fields(step, spec1))
    return steps1.concatenate(steps2)


def concat_if_terminal(
    steps: tf.data.Dataset,
    make_extra_steps: Callable[[dict[str, Any]], tf.data.Dataset],
) -> tf.data.Dataset:
    """Appends ``make_extra_steps(last_step)`` when the last step ``is_terminal``.

    The skeleton for absorbing states. The result always has the fields of both datasets
    (see :func:`concatenate`), whether or not the extra steps were appended, so it can be
    used inside ``Dataset.map`` (e.g. through :func:`apply_nested_steps`).

    Raises:
      ValueError: the steps have no ``is_terminal`` field.
    """
    check_keys([rlds_types.IS_TERMINAL], steps.element_spec, where="step")
    last_step = nested_ops.final_step(steps)
    extra_steps = make_extra_steps(last_step)
    # take(-1) keeps every extra step, take(0) none: no branching on datasets needed.
    count = tf.where(tf.cast(last_step[rlds_types.IS_TERMINAL], tf.bool), -1, 0)
    return concatenate(steps, extra_steps.take(tf.cast(count, tf.int64)))


def truncate_after_condition(
    steps_dataset: tf.data.Dataset,
    truncate_condition: Callable[[Any], Any],
) -> tf.data.Dataset:
    """Keeps steps up to and including the first one for which ``truncate_condition`` holds."""

    def tag_with_previous(previous_matched: tf.Tensor, step: Any) -> tuple[tf.Tensor, Any]:
        matched = tf.cast(truncate_condition(step), tf.bool)
        return tf.reshape(matched, []), (step, previous_matched)

    tagged = steps_dataset.scan(tf.constant(False), tag_with_previous)
    kept = tagged.take_while(lambda _, previous_matched: tf.logical_not(previous_matched))
    return kept.map(lambda step, _: step)
