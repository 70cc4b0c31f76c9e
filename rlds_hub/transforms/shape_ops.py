"""Elements built from a ``tf.data`` element spec: zeros, uniform noise, byte sizes."""

from __future__ import annotations

import sys
from typing import Any

import tensorflow as tf

# dtypes that tf.random.uniform samples directly; other integer dtypes sample int64 and cast.
_UNIFORM_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64, tf.int32, tf.int64)


def _concrete_shape(shape: tf.TensorShape) -> tuple[int, ...]:
    """Replaces unknown dimensions with 1 (a batched spec gives a batch of one)."""
    if shape.rank is None:
        return ()
    return tuple(1 if dim is None else dim for dim in shape.as_list())


def size_from_spec(spec: Any) -> int:
    """Returns the size in bytes of one element of ``spec``, or ``sys.maxsize`` if unknown."""
    try:
        return sum(leaf.dtype.size * leaf.shape.num_elements() for leaf in tf.nest.flatten(spec))
    except (AttributeError, TypeError):
        return sys.maxsize


def zeros_from_spec(spec: Any) -> Any:
    """Returns a nest of zeros (``False``, ``b""`` for bools, strings) matching ``spec``.

    Unknown dimensions become 1: the spec of a batch of steps gives a batch of one zero step.
    """
    return tf.nest.map_structure(lambda t: tf.zeros(_concrete_shape(t.shape), t.dtype), spec)


def uniform_from_spec(spec: Any, minval: int, maxval: int, seed: int) -> Any:
    """Returns a nest of values drawn uniformly from ``[minval, maxval)`` matching ``spec``.

    Unknown dimensions become 1, as in :func:`zeros_from_spec`. Integer dtypes that
    ``tf.random.uniform`` does not sample (uint8, int16, ...) are drawn as int64 and cast.
    """

    def uniform(leaf: tf.TensorSpec) -> tf.Tensor:
        shape = _concrete_shape(leaf.shape)
        if leaf.dtype in _UNIFORM_DTYPES:
            return tf.random.uniform(
                shape, minval=minval, maxval=maxval, seed=seed, dtype=leaf.dtype
            )
        if leaf.dtype.is_integer or leaf.dtype == tf.bool:
            values = tf.random.uniform(
                shape, minval=minval, maxval=maxval, seed=seed, dtype=tf.int64
            )
            return tf.cast(values, leaf.dtype)
        raise TypeError(f"uniform_from_spec cannot sample dtype {leaf.dtype.name}")

    return tf.nest.map_structure(uniform, spec)


def zero_dataset_like(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Returns a one-element dataset of zeros with the element structure of ``ds``."""
    return tf.data.Dataset.from_tensors(zeros_from_spec(ds.element_spec))
