"""``rlds.transformations.batched_helpers``: a function applied to batches of steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from rlds_hub.transforms import flexible_batch
from rlds_hub.transforms.nested_ops import on_a_copy


def batched_map(
    steps: tf.data.Dataset,
    map_fn: Callable[[Any], Any],
    size: int = flexible_batch.BATCH_AUTO_TUNE,
    shift: int | None = None,
    stride: int = 1,
) -> tf.data.Dataset:
    """Applies ``map_fn`` to batches of ``size`` steps (``flexible_batch.batch``'s ``shift``
    and ``stride``) and returns the steps unbatched again; ``map_fn`` may modify its batch."""
    batches = flexible_batch.batch(steps, size, shift, stride)
    return batches.map(on_a_copy(map_fn)).unbatch()
