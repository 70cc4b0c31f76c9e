"""The per-episode table of a split, and the dataset's step layout.

One row per episode, in reading order::

    {"episode": 3,            # index in the split
     "num_steps": 6,          # RLDS steps, as stored
     "num_transitions": 5,    # (s, a, r, s') transitions the loaders make of it
     "return": 1.25,          # float sum of rewards (see layouts); None unless the reward
                              # is a scalar number; NaN / inf kept as such
     "terminated": True,      # is_terminal on the last step (False: truncated)
     "metadata": {"operator": "alice", "info/score": 0.5}}   # scalar episode-level features

The rows come from ``episodes.jsonl`` when it covers every episode of the split (nothing is
decoded); otherwise from the records, decoding only the fields the table needs.

**Layouts.** Datasets follow one of two conventions for the last step (``is_last``):

- ``"rlds"`` (RLDS's own, what rlds_hub and envlogger write): the last step holds only the
  final observation; its action, reward and discount are zero-filled and meaningless. An
  episode of N transitions has N + 1 steps; the return sums the rewards of the other steps.
- ``"oxe"`` (the Open X-Embodiment convention): every step, the last included, is a real
  (observation, action, reward) step — the success reward is often on the last step, and
  no final observation is stored. The return sums every reward; each step is a transition.

The layout is read from ``metadata.json`` (``"layout"``) when rlds_hub wrote the dataset,
and otherwise detected from the data (:func:`dataset_layout`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from rlds_hub import rlds_types as rlds
from rlds_hub.format.decode import NUM_STEPS, EpisodeDecoder, ParseError
from rlds_hub.format.plan import Leaf, LeafKind, Plan
from rlds_hub.storage.dataset import RLDSDataset, open_dataset
from rlds_hub.storage.dataset_files import EPISODE_INDEX, DatasetError
from rlds_hub.storage.episode_index import EpisodeIndex
from rlds_hub.storage.names import as_dataset
from rlds_hub.storage.reader import DecodedBatch, iter_batches, iter_records
from rlds_hub.storage.selection import EpisodeSpec, Selection, episode_indices

LAYOUT_RLDS = "rlds"
LAYOUT_OXE = "oxe"
LAYOUTS = (LAYOUT_RLDS, LAYOUT_OXE)
LAYOUT_DESCRIPTIONS = {
    LAYOUT_RLDS: "the last step holds the final observation; its action, reward and "
    "discount are zero-filled (RLDS)",
    LAYOUT_OXE: "every step, the last included, holds a real action and reward; no final "
    "observation step (Open X-Embodiment)",
}
# Episodes read to detect the layout of a dataset rlds_hub did not write.
DETECTION_EPISODES = 64

PathOrDataset = str | os.PathLike | RLDSDataset
_STEPS = f"{rlds.STEPS}/"
_OXE_PREFIX = f"{rlds.EPISODE_METADATA}/"


# ---- layout --------------------------------------------------------------------------------


def dataset_layout(source: PathOrDataset) -> str:
    """The dataset's last-step layout, "rlds" or "oxe" (see the module docstring).

    ``metadata.json``'s ``"layout"`` when present; "rlds" for datasets rlds_hub recorded;
    otherwise detected from the data: "oxe" if the last step of most of the first
    ``DETECTION_EPISODES`` decodable episodes of the first split holds a non-zero reward or
    action (a few such episodes in a zero-filled dataset are defects ``validate`` reports).
    """
    dataset = as_dataset(source, "dataset_layout()")
    if "layout" in dataset.cache:
        return dataset.cache["layout"]
    meta = dataset.dataset_metadata
    if meta.layout in LAYOUTS:
        layout = meta.layout
    elif meta.rlds_hub_version is not None and meta.specs is not None:
        layout = LAYOUT_RLDS  # written by rlds_hub's recorder: zero-filled by construction
    else:
        layout = _detect_layout(dataset)
    dataset.cache["layout"] = layout
    return layout


def last_step_evidence(plan: Plan, batch: DecodedBatch) -> np.ndarray:
    """[B] bool: episodes whose last step holds a non-zero reward or action."""
    found = np.zeros(len(batch.num_steps), dtype=bool)
    last = batch.last_step
    owner = batch.owner[last]
    for leaf in _reward_and_action_leaves(plan):
        values = batch.arrays[leaf.key][last].reshape(int(last.sum()), -1)
        nonzero = np.any(values != 0, axis=1)
        found[owner[nonzero]] = True
    return found


def _reward_and_action_leaves(plan: Plan) -> list[Leaf]:
    return [
        leaf
        for leaf in plan.step_leaves
        if leaf.field in (rlds.REWARD, rlds.ACTION) and leaf.is_numeric
    ]


def _detect_layout(dataset: RLDSDataset) -> str:
    leaves = _reward_and_action_leaves(dataset.plan)
    nonempty = [s for s in sorted(dataset.splits) if dataset.splits[s].num_episodes]
    if not leaves or not nonempty:
        return LAYOUT_RLDS
    split = nonempty[0]
    count = min(DETECTION_EPISODES, dataset.split(split).num_episodes)
    selection = Selection(dataset, split, tuple(range(count)))
    plan = Plan([*leaves, dataset.plan.length_leaf()])
    decoder = EpisodeDecoder(plan)
    real = decoded = 0
    try:
        for record in iter_records(selection):
            try:
                arrays = decoder.decode([record.data])
            except (ParseError, ValueError):
                continue  # an undecodable episode says nothing about the layout
            num_steps = arrays.pop(NUM_STEPS)
            batch = DecodedBatch(np.array([record.index]), num_steps, arrays)
            decoded += 1
            real += int(last_step_evidence(plan, batch).sum())
    except DatasetError:
        pass  # a damaged shard: decide from the episodes read before it
    return LAYOUT_OXE if decoded and real * 2 > decoded else LAYOUT_RLDS


# ---- the episode table ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TablePlan:
    """Which leaves of a dataset make its episode table, and how."""

    length_key: str
    terminal_key: str | None
    reward_key: str | None  # None unless the reward is a scalar number
    metadata: dict[str, tuple[str, str]]  # leaf key -> (row key, numpy dtype kind)
    layout: str = LAYOUT_RLDS

    @property
    def keys(self) -> set[str]:
        """The flattened keys to decode for the table."""
        keys = {self.length_key, *self.metadata}
        keys.update(k for k in (self.terminal_key, self.reward_key) if k)
        return keys

    @property
    def step_keys(self) -> set[str]:
        """The step keys among them (lengths, terminations, rewards)."""
        return {k for k in (self.length_key, self.terminal_key, self.reward_key) if k}

    @classmethod
    def for_plan(cls, plan: Plan, layout: str = LAYOUT_RLDS) -> TablePlan:
        reward = plan.step_leaf(rlds.REWARD)
        scalar_reward = reward is not None and reward.shape == () and reward.is_numeric
        terminal = plan.step_leaf(rlds.IS_TERMINAL)
        episode_scalars = [
            leaf
            for leaf in plan.episode_leaves
            if leaf.shape == () and (leaf.kind == LeafKind.STRING or leaf.is_numeric)
        ]
        return cls(
            length_key=plan.length_leaf().key,
            terminal_key=terminal.key if terminal is not None else None,
            reward_key=reward.key if scalar_reward else None,
            metadata=_metadata_names(episode_scalars),
            layout=layout,
        )


def _metadata_names(leaves: list[Leaf]) -> dict[str, tuple[str, str]]:
    """Row keys of episode metadata: the flattened key, with the Open X-Embodiment
    ``episode_metadata/`` prefix dropped unless that would clash with another key."""
    keys = {leaf.key for leaf in leaves}
    names = {}
    for leaf in leaves:
        name = leaf.key
        if name.startswith(_OXE_PREFIX) and name[len(_OXE_PREFIX) :] not in keys:
            name = name[len(_OXE_PREFIX) :]
        names[leaf.key] = (name, "S" if leaf.kind == LeafKind.STRING else leaf.dtype.kind)
    return names


def table_plan(dataset: RLDSDataset) -> TablePlan:
    return TablePlan.for_plan(dataset.plan, dataset_layout(dataset))


def transitions_in(num_steps: int, layout: str) -> int:
    """Transitions the loaders make of an episode of ``num_steps`` RLDS steps."""
    return num_steps if layout == LAYOUT_OXE else max(num_steps - 1, 0)


def batch_returns(plan: TablePlan, batch: DecodedBatch) -> np.ndarray | None:
    """[B] float64 returns, or None when the reward is not a scalar number: the rewards of
    every step but the last ("rlds" layout), or of every step ("oxe")."""
    if plan.reward_key is None:
        return None
    count = len(batch.num_steps)
    reward = batch.arrays[plan.reward_key].reshape(-1).astype(np.float64)
    if plan.layout != LAYOUT_OXE:
        reward = np.where(batch.last_step, 0.0, reward)  # the last reward is meaningless
    return np.bincount(batch.owner, weights=reward, minlength=count)


def rows_from_batch(plan: TablePlan, batch: DecodedBatch) -> list[dict[str, Any]]:
    """Table rows of a decoded batch (vectorised over its steps; a loop over episodes)."""
    num_steps = batch.num_steps
    count = len(num_steps)
    ends = np.cumsum(num_steps)
    nonempty = num_steps > 0
    terminated = np.zeros(count, dtype=bool)
    if plan.terminal_key is not None:
        flags = batch.arrays[plan.terminal_key].reshape(-1)
        terminated[nonempty] = flags[ends[nonempty] - 1]
    totals = batch_returns(plan, batch)
    returns = [None] * count if totals is None else totals.tolist()
    metadata: list[dict[str, Any]] = [{} for _ in range(count)]
    for key, (name, kind) in plan.metadata.items():
        for row, value in zip(metadata, batch.arrays[key].reshape(-1).tolist(), strict=True):
            row[name] = _metadata_value(value, kind)
    return [
        {
            "episode": int(batch.episodes[i]),
            "num_steps": int(num_steps[i]),
            "num_transitions": transitions_in(int(num_steps[i]), plan.layout),
            "return": returns[i],
            "terminated": bool(terminated[i]),
            "metadata": metadata[i],
        }
        for i in range(count)
    ]


def index_row(row: dict[str, Any], split: str, episode: int) -> dict[str, Any]:
    """A table row as an ``episodes.jsonl`` row (what the writer appends)."""
    out: dict[str, Any] = {
        "split": split,
        "episode": episode,
        "num_steps": row["num_steps"],
        "terminated": row["terminated"],
    }
    if row.get("return") is not None:
        out["return"] = row["return"]
    if row.get("metadata"):
        out["metadata"] = row["metadata"]
    return out


def _metadata_value(value: Any, kind: str) -> Any:
    """A metadata value as a plain Python scalar of its feature's kind (bytes as text)."""
    if kind == "S":
        return (
            value.decode("utf-8", errors="backslashreplace")
            if isinstance(value, bytes)
            else str(value)
        )
    if kind == "f":
        return float(value)
    if kind == "b":
        return bool(value)
    return int(value)


def _number(value: Any) -> float | None:
    """An index value as a float; older indexes stored non-finite returns as text."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return float(value)


def _row_from_index(position: int, row: dict[str, Any], plan: TablePlan) -> dict[str, Any]:
    metadata = {}
    for key, value in (row.get("metadata") or {}).items():
        name, kind = plan.metadata.get(key, (key, ""))
        if kind == "f":
            metadata[name] = _number(value)
        else:
            metadata[name] = _metadata_value(value, kind) if kind else value
    num_steps = int(row["num_steps"])
    return {
        "episode": position,
        "num_steps": num_steps,
        "num_transitions": transitions_in(num_steps, plan.layout),
        "return": None if plan.reward_key is None else _number(row.get("return")),
        "terminated": bool(row.get("terminated", False)),
        "metadata": metadata,
    }


def episode_table(
    source: PathOrDataset,
    split: str = "train",
    *,
    episodes: EpisodeSpec = None,
    batch_episodes: int = 256,
    use_index: bool = True,
) -> list[dict[str, Any]]:
    """One row per episode of ``split`` in reading order (see the module docstring).

    Args:
      source: a dataset directory, a dataset name or an already opened ``RLDSDataset``.
      split: the split.
      episodes: only these episodes (an int, range, slice or sequence of indices).
      batch_episodes: episodes decoded at once when the rows are computed from the records.
      use_index: False computes the rows from the records even if ``episodes.jsonl``
        covers the split.

    Raises:
      DatasetError: not a dataset, no such split, or an episode index out of range.
    """
    dataset = as_dataset(source, "episode_table()", selection=False)
    num_episodes = dataset.split(split).num_episodes
    indices = episode_indices(episodes, num_episodes)
    plan = table_plan(dataset)
    index_rows = dataset.episode_rows(split) if use_index else None
    if index_rows is not None:
        positions = range(num_episodes) if indices is None else indices.tolist()
        return [_row_from_index(i, index_rows[i], plan) for i in positions]
    selection = Selection(dataset, split, None if indices is None else tuple(indices.tolist()))
    rows = []
    for batch in iter_batches(selection, keys=plan.keys, batch_episodes=batch_episodes):
        rows += rows_from_batch(plan, batch)
    return rows


def rebuild_episode_index(directory: str | os.PathLike) -> int:
    """Rewrites ``episodes.jsonl`` from the records of every split; returns the rows."""
    dataset = open_dataset(directory)
    rows = []
    for split in sorted(dataset.splits):
        for row in episode_table(dataset, split, use_index=False):
            rows.append(index_row(row, split, row["episode"]))
    EpisodeIndex(Path(directory) / EPISODE_INDEX).rewrite(rows)
    return len(rows)


def is_number(value: Any) -> bool:
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return False
