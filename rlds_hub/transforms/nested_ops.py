"""Maps, sums and queries over datasets of steps and over the steps nested in episodes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from rlds_hub import rlds_types
from rlds_hub.transforms import flexible_batch, shape_ops
from rlds_hub.transforms._checks import guard_missing_keys


def copy_structure(value: Any) -> Any:
    """A copy of the dicts, lists and tuples of a nest (the tensors are shared).

    rlds's own examples write step functions that modify their step in place
    (``step[REWARD] += 1; return step``); TensorFlow 2.21's ``Dataset.map`` and
    ``tf.function`` refuse that ("should not modify its Python input arguments"), so user
    functions are called on a copy, which they may modify freely.
    """
    if isinstance(value, dict):
        return {k: copy_structure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_structure(v) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(copy_structure(v) for v in value)
    return value


def on_a_copy(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` called with copies of its arguments' structure (see :func:`copy_structure`)."""

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        return fn(*(copy_structure(a) for a in args))

    return call


def vectorized(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Returns ``fn`` applied to a batch of steps at once (``tf.vectorized_map``).

    ``fn`` is traced with AutoGraph, so Python control flow on step values works as it
    does in ``Dataset.map``; ops without a vectorised form fall back to a while loop.
    The glue here is not converted by AutoGraph, so an error raised while tracing ``fn``
    (e.g. a missing field) surfaces without extra wrapping. ``fn`` may modify its step.
    """
    traced = tf.function(on_a_copy(fn))

    @tf.autograph.experimental.do_not_convert
    def apply_to_batch(batch: Any) -> Any:
        return tf.vectorized_map(traced, batch)

    return apply_to_batch


def _map_steps(
    steps: tf.data.Dataset, transform_step: Callable[[Any], Any], batch_size: int
) -> tf.data.Dataset:
    transform_step = guard_missing_keys(transform_step)
    if batch_size > 1:
        return steps.batch(batch_size).map(vectorized(transform_step)).unbatch()
    return steps.map(on_a_copy(transform_step))


def _get_episode_metadata(episode: dict[str, Any]) -> dict[str, Any]:
    """The episode's fields other than its steps (``rlds`` helper of the same name)."""
    return {k: episode[k] for k in episode if k != rlds_types.STEPS}


def _map_episode(
    episode: dict[str, Any],
    transform_step: Callable[[Any], Any],
    in_place: bool,
    optimization_batch_size: int = 1,
) -> dict[str, Any]:
    """Applies ``transform_step`` to every step of one episode (``rlds``'s helper of the
    same name and signature, which user code calls directly). With ``in_place`` the given
    episode dict gets the new steps; otherwise a new episode holds them and the metadata."""
    steps = _map_steps(episode[rlds_types.STEPS], transform_step, optimization_batch_size)
    if in_place:
        episode[rlds_types.STEPS] = steps
        return episode
    return rlds_types.build_episode(steps=steps, metadata=_get_episode_metadata(episode))


def _apply_episode(
    episode: dict[str, Any],
    transform_step_dataset: Callable[[tf.data.Dataset], Any],
    in_place: bool,
) -> dict[str, Any]:
    """Applies ``transform_step_dataset`` to one episode's steps dataset (``rlds`` helper)."""
    # Called directly (not through Dataset.apply), so AutoGraph converts its control flow.
    steps = transform_step_dataset(episode[rlds_types.STEPS])
    if in_place:
        episode[rlds_types.STEPS] = steps
        return episode
    return rlds_types.build_episode(steps=steps, metadata=_get_episode_metadata(episode))


def map_steps(
    steps_dataset: tf.data.Dataset,
    transform_step: Callable[[Any], Any],
    optimization_batch_size: int = flexible_batch.BATCH_AUTO_TUNE,
) -> tf.data.Dataset:
    """Applies ``transform_step`` to every step; its result need not be a step.

    Steps are transformed ``optimization_batch_size`` at a time (auto-tuned by default).

    Raises:
      ValueError: ``transform_step`` reads a field that the steps do not have.
    """
    batch_size = flexible_batch.get_batch_size(steps_dataset, optimization_batch_size)
    return _map_steps(steps_dataset, transform_step, batch_size)


def map_nested_steps(
    episodes_dataset: tf.data.Dataset,
    transform_step: Callable[[Any], Any],
    optimization_batch_size: int = flexible_batch.BATCH_AUTO_TUNE,
) -> tf.data.Dataset:
    """Applies ``transform_step`` to every step of every episode; metadata is kept.

    Raises:
      ValueError: ``transform_step`` reads a field that the steps do not have.
    """
    batch_size = flexible_batch.get_batch_size(episodes_dataset, optimization_batch_size)

    # Not converted by AutoGraph (no control flow here; transform_step is converted by the
    # inner map), so an error raised while tracing transform_step surfaces unwrapped.
    @tf.autograph.experimental.do_not_convert
    def map_episode(episode: dict[str, Any]) -> dict[str, Any]:
        return _map_episode(dict(episode), transform_step, True, batch_size)

    return episodes_dataset.map(map_episode)


def apply_nested_steps(
    episodes_dataset: tf.data.Dataset,
    transform_step_dataset: Callable[[tf.data.Dataset], Any],
) -> tf.data.Dataset:
    """Replaces each episode's steps by ``transform_step_dataset(steps)``; metadata is kept."""

    def apply_episode(episode: dict[str, Any]) -> dict[str, Any]:
        return _apply_episode(dict(episode), transform_step_dataset, in_place=True)

    return episodes_dataset.map(apply_episode)


def _add_nests(total: Any, value: Any) -> Any:
    return tf.nest.map_structure(tf.add, total, value)


def sum_dataset(
    steps_dataset: tf.data.Dataset,
    data_to_sum: Callable[[Any], Any],
    optimization_batch_size: int = flexible_batch.BATCH_AUTO_TUNE,
) -> Any:
    """Returns the sum over all steps of ``data_to_sum(step)`` (a nest of addable tensors).

    An empty dataset sums to zeros.
    """
    data_to_sum = on_a_copy(guard_missing_keys(data_to_sum))
    batch_size = flexible_batch.get_batch_size(steps_dataset, optimization_batch_size)
    if batch_size > 1:
        per_step = vectorized(data_to_sum)

        @tf.autograph.experimental.do_not_convert
        def sum_batch(batch: Any) -> Any:
            return tf.nest.map_structure(lambda x: tf.reduce_sum(x, axis=0), per_step(batch))

        partial_sums = steps_dataset.batch(batch_size).map(
            sum_batch, num_parallel_calls=tf.data.AUTOTUNE
        )
    else:
        partial_sums = steps_dataset.map(data_to_sum, num_parallel_calls=tf.data.AUTOTUNE)
    return partial_sums.reduce(shape_ops.zeros_from_spec(partial_sums.element_spec), _add_nests)


def sum_nested_steps(
    episodes_dataset: tf.data.Dataset,
    data_to_sum: Callable[[Any], Any],
    optimization_batch_size: int = flexible_batch.BATCH_AUTO_TUNE,
) -> Any:
    """Returns the sum of ``data_to_sum(step)`` over the steps of all episodes."""
    steps = episodes_dataset.flat_map(lambda episode: episode[rlds_types.STEPS])
    return sum_dataset(steps, data_to_sum, optimization_batch_size)


# Used with Dataset.batch to gather a whole dataset of steps into one batch.
MAX_BATCH = 2**31 - 1


def first_or(dataset: tf.data.Dataset, default: Any) -> Any:
    """Returns the first element of ``dataset``, or ``default`` if it is empty.

    Cheap inside ``Dataset.map`` functions (``Dataset.reduce`` costs milliseconds per call).
    """
    fallback = tf.data.Dataset.from_tensors(default)
    return dataset.concatenate(fallback).take(1).get_single_element()


def empty_batch(element_spec: Any) -> Any:
    """Returns a batch of zero elements (leading axis 0) with structure ``element_spec``."""
    return tf.nest.map_structure(
        lambda s: tf.zeros([0] + [d or 0 for d in s.shape.as_list()], s.dtype), element_spec
    )


def final_step(steps_dataset: tf.data.Dataset) -> Any:
    """Returns the last step of ``steps_dataset`` (zeros if it is empty).

    Skips straight to the end when the cardinality is known; otherwise reads all steps.
    Works eagerly and inside ``Dataset.map`` functions.
    """
    zero_step = shape_ops.zeros_from_spec(steps_dataset.element_spec)
    cardinality = steps_dataset.cardinality()

    def skip_to_last() -> Any:
        return first_or(steps_dataset.skip(tf.maximum(cardinality - 1, 0)), zero_step)

    def read_all() -> Any:
        return steps_dataset.reduce(zero_step, lambda _, step: step)

    return tf.cond(cardinality >= 0, skip_to_last, read_all)


def episode_length(
    steps_dataset: tf.data.Dataset,
    optimization_batch_size: int = flexible_batch.BATCH_AUTO_TUNE,
) -> tf.Tensor:
    """Returns the number of steps as an int32 scalar tensor.

    Uses the cardinality when it is known, else counts batches of
    ``optimization_batch_size`` steps.
    """
    batch_size = max(1, flexible_batch.get_batch_size(steps_dataset, optimization_batch_size))

    def count() -> tf.Tensor:
        sizes = steps_dataset.batch(batch_size).map(
            lambda batch: tf.shape(tf.nest.flatten(batch)[0])[0]
        )
        return tf.reduce_sum(first_or(sizes.batch(MAX_BATCH), tf.zeros([0], tf.int32)))

    cardinality = steps_dataset.cardinality()
    return tf.cond(
        cardinality == tf.data.UNKNOWN_CARDINALITY,
        count,
        lambda: tf.cast(cardinality, tf.int32),
    )
