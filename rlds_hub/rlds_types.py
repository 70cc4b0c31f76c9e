"""RLDS field names and the small helpers that build steps and episodes.

The names and helpers mirror ``rlds.rlds_types`` (rlds 0.1.8) so user code can switch imports.
Features derived from dm_env specs live in :mod:`rlds_hub.format.features`; contract checks in
:mod:`rlds_hub.inspection.validate`.
"""

from __future__ import annotations

from typing import Any

# Episode-level field holding the nested dataset of steps.
STEPS = "steps"
# Step-level fields (SAR alignment: step i holds o_i, a_i and the r_i, d_i that followed a_i).
OBSERVATION = "observation"
ACTION = "action"
REWARD = "reward"
DISCOUNT = "discount"
IS_FIRST = "is_first"
IS_LAST = "is_last"
IS_TERMINAL = "is_terminal"
# Key under which some datasets (Open X-Embodiment) nest episode metadata.
EPISODE_METADATA = "episode_metadata"
# Key written by rlds transformations that change alignment.
ALIGNMENT = "alignment"

CORE_STEP_FIELDS = (OBSERVATION, ACTION, REWARD, DISCOUNT, IS_FIRST, IS_LAST, IS_TERMINAL)
FLAG_FIELDS = (IS_FIRST, IS_LAST, IS_TERMINAL)
# Fields whose value on the last step is zero-filled and meaningless.
ZERO_FILLED_ON_LAST = (ACTION, REWARD, DISCOUNT)

Step = dict[str, Any]
Episode = dict[str, Any]


def build_step(
    observation: Any = None,
    action: Any = None,
    reward: Any = None,
    discount: Any = None,
    is_terminal: Any = None,
    is_first: Any = None,
    is_last: Any = None,
    metadata: dict[str, Any] | None = None,
) -> Step:
    """Returns an RLDS step holding the given fields (``None`` fields are left out)."""
    values = {
        OBSERVATION: observation,
        ACTION: action,
        REWARD: reward,
        DISCOUNT: discount,
        IS_TERMINAL: is_terminal,
        IS_FIRST: is_first,
        IS_LAST: is_last,
    }
    step: Step = {key: value for key, value in values.items() if value is not None}
    if metadata:
        clashes = sorted(set(metadata) & set(step))
        if clashes:
            raise ValueError(f"Invalid Step Metadata: keys {clashes} clash with RLDS step fields")
        step.update(metadata)
    return step


def build_episode(steps: Any, metadata: dict[str, Any] | None = None) -> Episode:
    """Returns an RLDS episode: ``steps`` plus episode metadata at the top level."""
    episode: Episode = {STEPS: steps}
    if metadata:
        if STEPS in metadata:
            raise ValueError(f"Invalid Episode Metadata: it must not contain the key {STEPS!r}")
        episode.update(metadata)
    return episode


def is_valid_rlds_dataset(dataset: Any) -> bool:
    """rlds's basic check of a dataset of episodes: its first episode has a ``steps`` dataset
    whose first step holds every RLDS step field. (Iterates the dataset; no other check.)"""
    for episode in dataset:
        if STEPS not in episode:
            return False
        for step in episode[STEPS]:
            return set(CORE_STEP_FIELDS) <= set(step.keys())
        return False
    return False
