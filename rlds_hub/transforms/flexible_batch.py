"""Sliding-window batching of datasets (``rlds.transformations.batch``)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from rlds_hub import rlds_types
from rlds_hub.transforms import shape_ops
from rlds_hub.transforms._checks import check_positive, require_dataset

# Passed as a size to let the transform pick a batch size that targets efficient execution.
BATCH_AUTO_TUNE = -1

# Bytes per batch targeted by BATCH_AUTO_TUNE: large enough to amortise per-batch overhead,
# small enough to keep memory flat.
DEFAULT_BATCH_SIZE_IN_BYTES = 200_000


def get_batch_size(dataset: tf.data.Dataset, optimization_batch_size: int = BATCH_AUTO_TUNE) -> int:
    """Returns ``optimization_batch_size``, or one that fits ~200 kB of steps when auto-tuned.

    ``dataset`` may hold steps or episodes (then the size of one step is used).
    """
    require_dataset(dataset, "steps or episodes")
    if optimization_batch_size != BATCH_AUTO_TUNE:
        return optimization_batch_size
    element_spec: Any = dataset.element_spec
    if isinstance(element_spec, dict) and rlds_types.STEPS in element_spec:
        element_spec = element_spec[rlds_types.STEPS].element_spec
    step_size_in_bytes = max(1, shape_ops.size_from_spec(element_spec))
    return max(1, DEFAULT_BATCH_SIZE_IN_BYTES // step_size_in_bytes)


def batch(
    dataset: tf.data.Dataset,
    size: int = BATCH_AUTO_TUNE,
    shift: int | None = None,
    stride: int = 1,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches elements into windows of ``size``; like ``Dataset.window`` but with tensors.

    Windows start at elements 0, ``shift``, 2·``shift``, ... (``shift`` defaults to ``size``)
    and take every ``stride``-th element. Trailing windows shorter than ``size`` are kept
    unless ``drop_remainder``. For a dataset (1, 2, 3, 4):

    * ``batch(ds, 2, shift=1)`` -> [1, 2], [2, 3], [3, 4], [4]
    * ``batch(ds, 2, shift=1, drop_remainder=True)`` -> [1, 2], [2, 3], [3, 4]
    * ``batch(ds, 2, shift=2)`` -> [1, 2], [3, 4]
    * ``batch(ds, 2, shift=1, stride=2)`` -> [1, 3], [2, 4], [3], [4]
    """
    size = get_batch_size(dataset, size)
    if not shift:
        shift = size
    check_positive("size", size)
    check_positive("shift", shift)
    check_positive("stride", stride)
    if shift == size and stride == 1:
        return dataset.batch(size, drop_remainder=drop_remainder)
    windows = dataset.window(size, shift=shift, stride=stride, drop_remainder=drop_remainder)
    return windows.flat_map(
        lambda window: tf.data.Dataset.zip(window).batch(size, drop_remainder=drop_remainder)
    )
