"""Single-step items of a decoded chunk: every field of the step, frame history and action
chunks with their masks, the episode's fields, and where the step came from.

The indices come from :func:`rlds_hub.data.indices.step_indices` (vectorised, no per-step
Python); each field is gathered once, in the chunk's item order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlds_hub import rlds_types as rlds
from rlds_hub.data import indices
from rlds_hub.format.decode import NUM_STEPS
from rlds_hub.storage.episodes import LAYOUT_OXE

EPISODE_INDEX = "episode_index"
STEP_INDEX = "step_index"
OBSERVATION_MASK = "observation_mask"
ACTION_MASK = "action_mask"
# The keys the step loaders make (a dataset's own field of one of these names is an error).
MADE = (EPISODE_INDEX, STEP_INDEX, OBSERVATION_MASK, ACTION_MASK)

Take = Callable[[np.ndarray, np.ndarray], np.ndarray]
_STEPS = f"{rlds.STEPS}/"


def decoded_step_items(
    decoded: Mapping[str, np.ndarray],
    lengths: np.ndarray,
    episode_ids: np.ndarray,
    spec: Any,
    order: np.ndarray | None,
    take: Take | None = None,
) -> dict[str, np.ndarray]:
    """:func:`step_items` of decoded episodes (flat keys, ``steps/...`` for step fields, as
    :mod:`rlds_hub.format.decode` gives them), a missing ``discount`` derived as in the
    other loaders (:func:`rlds_hub.data.indices.missing_discounts`)."""
    steps = {k[len(_STEPS) :]: v for k, v in decoded.items() if k.startswith(_STEPS)}
    episode_fields = {
        k: v for k, v in decoded.items() if not k.startswith(_STEPS) and k != NUM_STEPS
    }
    if rlds.DISCOUNT in spec.outputs and rlds.DISCOUNT not in steps:  # the dataset has none
        steps[rlds.DISCOUNT] = indices.missing_discounts(
            lengths, steps[rlds.IS_TERMINAL], final_transition=spec.layout == LAYOUT_OXE
        )
    take = take or _take_rows
    return step_items(steps, episode_fields, lengths, episode_ids, spec, order, take)


def _take_rows(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.take(values, index, axis=0)


def usable_steps(
    bad: np.ndarray, lengths: np.ndarray, order: np.ndarray, history: int
) -> np.ndarray:
    """[len(order)] bool: the steps of ``order`` whose observations (with their history)
    hold no frame marked ``bad`` (replaced by zeros: it did not decode)."""
    found = indices.step_indices(lengths, history, 1, False, order)
    return ~bad[found["history"]].any(axis=1)


def step_items(
    steps: Mapping[str, np.ndarray],
    episode_fields: Mapping[str, np.ndarray],
    lengths: np.ndarray,
    episode_ids: np.ndarray,
    spec: Any,
    order: np.ndarray | None,
    take: Take,
) -> dict[str, np.ndarray]:
    """One chunk's steps as items (flat keys), all of them or ``order``'s (step positions,
    e.g. a permutation).

    ``steps`` maps step keys without ``steps/`` to ``[sum of lengths, ...]`` arrays,
    ``episode_fields`` episode keys to ``[episodes, ...]``; ``spec`` is the loader's
    :class:`~rlds_hub.data.chunks.ItemSpec` (``outputs``, ``history``, ``action_chunk``,
    ``layout``); ``take`` gathers rows (``np.take(values, index, axis=0)``).

    Observation leaves get a history axis ``[H + 1]`` when ``history`` > 0 (padding repeats
    the episode's first step), action leaves a chunk axis ``[C]`` when ``action_chunk`` > 1
    (padding is zero); ``action_mask`` is always there (``[C]``, or ``[]`` for one action),
    since the last step of the ``rlds`` layout holds no real action.
    """
    found = indices.step_indices(
        lengths, spec.history, spec.action_chunk, spec.layout == LAYOUT_OXE, order
    )
    out: dict[str, np.ndarray] = {}
    chunk_mask = found["chunk_mask"]
    for key, values in steps.items():
        field = key.split("/")[0]
        if field not in spec.outputs:
            continue
        if field == rlds.OBSERVATION and spec.history:
            out[key] = take(values, found["history"])
        elif field == rlds.ACTION and spec.action_chunk > 1:
            gathered = take(values, found["chunk"])
            gathered[~chunk_mask] = b"" if gathered.dtype == object else 0
            out[key] = gathered
        else:
            out[key] = take(values, found["step"])
    for key, values in episode_fields.items():
        if key.split("/")[0] in spec.outputs:
            out[key] = take(values, found["episode"])
    if spec.history:
        out[OBSERVATION_MASK] = found["history_mask"]
    out[ACTION_MASK] = chunk_mask if spec.action_chunk > 1 else chunk_mask[:, 0]
    out[EPISODE_INDEX] = np.asarray(episode_ids, np.int64)[found["episode"]]
    out[STEP_INDEX] = found["position"]
    return out
