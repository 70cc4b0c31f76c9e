"""Re-alignment of step fields (``shift_keys``) and the alignment tag of a step."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from rlds_hub import rlds_types
from rlds_hub.transforms import flexible_batch
from rlds_hub.transforms._checks import check_keys


def _slice_leading(field: Any, start: int | None, stop: int | None) -> Any:
    return tf.nest.map_structure(lambda x: x[start:stop], field)


def shift_keys(
    steps: tf.data.Dataset,
    keys: Sequence[str],
    shift: int,
    batch_size: int = flexible_batch.BATCH_AUTO_TUNE,
) -> tf.data.Dataset:
    """Moves the fields in ``keys`` by ``shift`` steps relative to the other fields.

    In output step i the fields in ``keys`` hold the values of input step i + ``shift`` while
    the other fields keep those of step i (for ``shift`` < 0 the first ``|shift|`` steps lose
    their ``keys`` values instead). Steps without a partner are dropped, so the result has
    ``|shift|`` fewer steps than ``steps``. Batches of ``batch_size`` steps (overlapping by
    ``|shift|``) are processed at once; it must exceed ``|shift|``.

    Raises:
      ValueError: a key is not a step field, or ``|shift| >= batch_size``.
    """
    check_keys(keys, steps.element_spec, where="step")
    if shift == 0:
        return steps
    if batch_size == flexible_batch.BATCH_AUTO_TUNE:
        batch_size = max(4 * abs(shift), flexible_batch.get_batch_size(steps, batch_size))
    if abs(shift) >= batch_size:
        raise ValueError(
            f"cannot shift by {shift} steps with a batch size of {batch_size}: "
            "abs(shift) must be smaller than the batch size"
        )
    shifted = set(keys)

    def realign(batch: dict[str, Any]) -> dict[str, Any]:
        moved = (shift, None) if shift > 0 else (None, shift)
        kept = (None, -shift) if shift > 0 else (-shift, None)
        return {
            key: _slice_leading(value, *(moved if key in shifted else kept))
            for key, value in batch.items()
        }

    batches = flexible_batch.batch(steps, size=batch_size, shift=batch_size - abs(shift))
    return batches.map(realign).unbatch()


@enum.unique
class AlignmentType(enum.Enum):
    """How a step groups observation, action and reward (RLDS steps are SAR)."""

    UNKNOWN = enum.auto()
    SAR = enum.auto()
    ARS = enum.auto()
    RSA = enum.auto()


def add_alignment_to_step(step: dict[str, Any], alignment: AlignmentType) -> dict[str, Any]:
    """Sets ``step["alignment"]`` to ``alignment.value`` and returns the step."""
    step[rlds_types.ALIGNMENT] = alignment.value
    return step
