"""The per-episode table of a split, and selecting episodes by length, return or metadata.

One row per episode, in reading order::

    {"episode": 3,            # index in the split
     "num_steps": 6,          # RLDS steps (N + 1 for N transitions)
     "num_transitions": 5,
     "return": 1.25,          # float sum of rewards over the transitions; None unless the
                              # reward is a scalar number
     "terminated": True,      # is_terminal on the last step (False: truncated)
     "metadata": {"operator": "alice", "info/score": 0.5}}   # scalar episode-level features

The rows come from ``episodes.jsonl`` when it covers every episode of the split (nothing is
decoded); otherwise from the records, parsing only the fields the table needs. Both give the
same rows for a dataset recorded by rlds_hub (returns may differ in the last bit: the sums are
taken in a different order). The batch reader here is shared with :mod:`rlds_hub.data.stats`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from rlds_hub import spec as rlds
from rlds_hub.data.loading import EpisodeSpec, as_dataset, episode_indices
from rlds_hub.dataset import RLDSDataset
from rlds_hub.decode import NUM_STEPS, EpisodeDecoder, Leaf, compile_leaves, string_tensor
from rlds_hub.storage.layout import DatasetError

PathOrDataset = str | os.PathLike | RLDSDataset

# A batch of episodes is decoded at once when it reaches either bound.
DEFAULT_BATCH_EPISODES = 256
DEFAULT_BATCH_BYTES = 64 * 2**20

_STEPS_PREFIX = f"{rlds.STEPS}/"
_OXE_PREFIX = f"{rlds.EPISODE_METADATA}/"


# ---- reading and decoding batches of episodes ----------------------------------------------


@dataclasses.dataclass(frozen=True)
class DecodedBatch:
    """Some consecutive-in-selection episodes, decoded to numpy.

    ``arrays`` maps flattened keys ("steps/reward", "operator") to arrays: step keys over all
    steps of the batch concatenated, episode keys ``[B, ...]``; ``num_steps`` is ``[B]``.
    """

    episodes: np.ndarray  # [B] indices in the split
    num_steps: np.ndarray  # [B]
    arrays: dict[str, np.ndarray]

    @functools.cached_property
    def last_step(self) -> np.ndarray:
        """[sum num_steps] bool: True on the last step of each (non-empty) episode."""
        mask = np.zeros(int(self.num_steps.sum()), dtype=bool)
        ends = np.cumsum(self.num_steps)
        mask[ends[self.num_steps > 0] - 1] = True
        return mask


def prune_features(feature: Any, keep: set[str], prefix: str = "") -> Any:
    """The episode features restricted to the leaves whose flattened key is in ``keep``
    (None when nothing is kept), so the decoder parses nothing else."""
    if isinstance(feature, tfds.features.Dataset | tfds.features.Sequence):
        inner = prune_features(feature.feature, keep, prefix)
        return None if inner is None else tfds.features.Dataset(inner)
    if isinstance(feature, tfds.features.FeaturesDict):
        kept = {}
        for key in feature:
            child = prune_features(feature[key], keep, f"{prefix}/{key}" if prefix else key)
            if child is not None:
                kept[key] = child
        return tfds.features.FeaturesDict(kept) if kept else None
    return feature if prefix in keep else None


def iter_decoded_batches(
    dataset: RLDSDataset,
    split: str,
    keys: set[str],
    *,
    episodes: np.ndarray | None = None,
    batch_episodes: int = DEFAULT_BATCH_EPISODES,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> Iterator[DecodedBatch]:
    """Decodes the episodes of ``split`` (or only ``episodes``, sorted indices) in batches,
    parsing only the leaves in ``keys`` (flattened keys, e.g. "steps/reward").

    Memory is bounded by one shard file plus one batch (``batch_episodes`` episodes or
    ``batch_bytes`` serialized bytes, whichever comes first). Shards holding no selected
    episode are not read.
    """
    if batch_episodes < 1:
        raise ValueError(f"batch_episodes must be at least 1, got {batch_episodes}")
    from rlds_hub.storage import shards

    info = dataset.split(split)
    features = prune_features(dataset.features, keys)
    if features is None:
        raise ValueError(f"none of the keys {sorted(keys)} is a feature of {dataset.path}")
    decoder = EpisodeDecoder(features)
    wanted = None if episodes is None else np.asarray(episodes, dtype=np.int64)
    batch_indices: list[int] = []
    batch_records: list[bytes] = []
    size = 0

    def flush() -> DecodedBatch:
        decoded = decoder.decode(string_tensor(batch_records))
        arrays = {key: value.numpy() for key, value in decoded.items()}
        num_steps = arrays.pop(NUM_STEPS).astype(np.int64)
        return DecodedBatch(np.asarray(batch_indices, dtype=np.int64), num_steps, arrays)

    start = 0
    for shard_path, length in info.nonempty_shards:
        first, start = start, start + length
        if wanted is not None:
            lo, hi = np.searchsorted(wanted, [first, start])
            selected = wanted[lo:hi] - first
            if not selected.size:
                continue
        else:
            selected = range(length)
        records = shards.read_records(shard_path, dataset.file_format)
        if len(records) != length:
            raise DatasetError(
                f"{shard_path} holds {len(records)} episodes but dataset_info.json says "
                f"{length}; run `rlds-hub validate` on {dataset.path}"
            )
        for i in selected:
            record = records[int(i)]
            batch_indices.append(first + int(i))
            batch_records.append(record)
            size += len(record)
            if len(batch_records) >= batch_episodes or size >= batch_bytes:
                yield flush()
                batch_indices, batch_records, size = [], [], 0
    if batch_records:
        yield flush()


# ---- the episode table ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TablePlan:
    """Which leaves of a dataset make its episode table, and how."""

    length_key: str
    terminal_key: str | None
    reward_key: str | None  # None unless the reward is a scalar number
    metadata: dict[str, tuple[str, str]]  # leaf key -> (row key, numpy dtype kind)

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
    def for_leaves(cls, leaves: list[Leaf]) -> TablePlan:
        by_key = {leaf.key: leaf for leaf in leaves}
        step_leaves = [leaf for leaf in leaves if leaf.in_steps]
        # Any step leaf gives the decoder the episode lengths; prefer a small one.
        small = [f"{_STEPS_PREFIX}{k}" for k in (rlds.IS_FIRST, rlds.IS_LAST, rlds.REWARD)]
        length_key = next(
            (k for k in small if k in by_key), step_leaves[0].key if step_leaves else ""
        )
        terminal_key = f"{_STEPS_PREFIX}{rlds.IS_TERMINAL}"
        reward = by_key.get(f"{_STEPS_PREFIX}{rlds.REWARD}")
        scalar_reward = reward is not None and reward.shape == () and bool(_numeric_kind(reward))
        episode_scalars = [
            leaf for leaf in leaves
            if not leaf.in_steps and leaf.shape == () and leaf.kind in ("native", "raw", "string")
            and (leaf.kind == "string" or _numeric_kind(leaf))
        ]
        return cls(
            length_key=length_key,
            terminal_key=terminal_key if terminal_key in by_key else None,
            reward_key=reward.key if scalar_reward else None,
            metadata=_metadata_names(episode_scalars),
        )


def _numeric_kind(leaf: Leaf) -> str | None:
    """numpy dtype kind of a numeric leaf ("b", "i", "u", "f"), None for others."""
    if leaf.kind == "string":
        return None
    kind = np.dtype(leaf.dtype.as_numpy_dtype).kind
    return kind if kind in "biuf" else None


def _metadata_names(leaves: list[Leaf]) -> dict[str, tuple[str, str]]:
    """Row keys of episode metadata: the flattened key, with the Open X-Embodiment
    ``episode_metadata/`` prefix dropped unless that would clash with another key."""
    keys = {leaf.key for leaf in leaves}
    names = {}
    for leaf in leaves:
        name = leaf.key
        if name.startswith(_OXE_PREFIX) and name[len(_OXE_PREFIX):] not in keys:
            name = name[len(_OXE_PREFIX):]
        names[leaf.key] = (name, "S" if leaf.kind == "string" else _numeric_kind(leaf))
    return names


def table_plan(dataset: RLDSDataset) -> TablePlan:
    return TablePlan.for_leaves(compile_leaves(dataset.features))


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
            "num_transitions": max(int(num_steps[i]) - 1, 0),
            "return": returns[i],
            "terminated": bool(terminated[i]),
            "metadata": metadata[i],
        }
        for i in range(count)
    ]


def batch_returns(plan: TablePlan, batch: DecodedBatch) -> np.ndarray | None:
    """[B] float64 returns (rewards summed over each episode's transitions), or None when
    the reward is not a scalar number."""
    if plan.reward_key is None:
        return None
    count = len(batch.num_steps)
    reward = batch.arrays[plan.reward_key].reshape(-1).astype(np.float64)
    reward = np.where(batch.last_step, 0.0, reward)  # the last reward is meaningless
    owner = np.repeat(np.arange(count), batch.num_steps)
    return np.bincount(owner, weights=reward, minlength=count)


def _metadata_value(value: Any, kind: str) -> Any:
    """A metadata value as a plain Python scalar of its feature's kind (the index stores
    bytes as text and non-finite floats as "nan" / "inf")."""
    if kind == "S":
        return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) \
            else str(value)
    if kind == "f":
        return float(value)
    if kind == "b":
        return bool(value)
    return int(value)


def _row_from_index(position: int, row: dict[str, Any], plan: TablePlan) -> dict[str, Any]:
    metadata = {}
    for key, value in (row.get("metadata") or {}).items():
        name, kind = plan.metadata.get(key, (key, ""))
        metadata[name] = _metadata_value(value, kind) if kind else value
    total = row.get("return")
    num_steps = int(row["num_steps"])
    return {
        "episode": position,
        "num_steps": num_steps,
        "num_transitions": max(num_steps - 1, 0),
        "return": None if plan.reward_key is None or total is None else float(total),
        "terminated": bool(row.get("terminated", False)),
        "metadata": metadata,
    }


def episode_table(
    path_or_dataset: PathOrDataset,
    split: str = "train",
    *,
    episodes: EpisodeSpec = None,
    batch_episodes: int = DEFAULT_BATCH_EPISODES,
) -> list[dict[str, Any]]:
    """One row per episode of ``split`` in reading order (see the module docstring).

    Args:
      path_or_dataset: a dataset directory or an already opened ``RLDSDataset``.
      split: the split.
      episodes: only these episodes (a range, slice or sequence of indices); default all.
      batch_episodes: episodes decoded at once when the rows are computed from the records.

    Raises:
      DatasetError: not a dataset, no such split, or an episode index out of range.
    """
    dataset = as_dataset(path_or_dataset)
    num_episodes = dataset.split(split).num_episodes
    indices = episode_indices(episodes, num_episodes)
    plan = table_plan(dataset)
    index_rows = dataset.episode_rows(split)
    if index_rows is not None:
        positions = range(num_episodes) if indices is None else indices.tolist()
        return [_row_from_index(i, index_rows[i], plan) for i in positions]
    rows = []
    for batch in iter_decoded_batches(
        dataset, split, plan.keys, episodes=indices, batch_episodes=batch_episodes
    ):
        rows += rows_from_batch(plan, batch)
    return rows


# ---- selection -----------------------------------------------------------------------------


def select_episodes(
    path_or_dataset: PathOrDataset,
    split: str = "train",
    *,
    where: Callable[[dict[str, Any]], Any] | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    min_return: float | None = None,
    max_return: float | None = None,
    terminated: bool | None = None,
    episodes: EpisodeSpec = None,
) -> list[int]:
    """Indices (ascending) of the episodes of ``split`` that pass every given filter.

    Args:
      path_or_dataset: a dataset directory or an already opened ``RLDSDataset``.
      split: the split.
      where: a predicate called with each episode's :func:`episode_table` row, e.g.
        ``lambda e: e["metadata"]["operator"] == "alice"``.
      min_length / max_length: inclusive bounds on the episode length in RLDS *steps*
        (``num_steps``: N + 1 for an episode of N transitions).
      min_return / max_return: inclusive bounds on the return (an episode whose return is
        NaN passes no return bound). Only for datasets whose reward is a scalar number.
      terminated: True for terminated episodes only, False for truncated ones only.
      episodes: consider only these episodes (a range, slice or sequence of indices),
        applied before the other filters (``where`` is called only on these).

    Raises:
      ValueError: inverted bounds, return bounds on a non-scalar reward, or ``where``
        raised (the message names the episode).
      DatasetError: not a dataset, no such split, or an episode index out of range.
    """
    for low, high, what in ((min_length, max_length, "length"),
                            (min_return, max_return, "return")):
        for bound in (low, high):
            if bound is not None and (isinstance(bound, bool) or not _is_number(bound)):
                raise ValueError(f"{what} bounds must be numbers, got {bound!r}")
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_{what} ({low}) is greater than max_{what} ({high})")
    if terminated is not None and not isinstance(terminated, bool | np.bool_):
        raise ValueError(f"terminated must be True, False or None, got {terminated!r}")
    if where is not None and not callable(where):
        raise ValueError(f"where must be a callable taking an episode row, got {where!r}")

    dataset = as_dataset(path_or_dataset)
    if (min_return is not None or max_return is not None) and table_plan(dataset).reward_key is None:
        raise ValueError(
            "min_return / max_return need a scalar numeric reward; this dataset's reward is not "
            "one, so episodes have no return (filter with where= instead)"
        )
    rows = episode_table(dataset, split, episodes=episodes)
    selected = []
    for row in rows:
        length, total = row["num_steps"], row["return"]
        if min_length is not None and length < min_length:
            continue
        if max_length is not None and length > max_length:
            continue
        if min_return is not None and (total is None or not total >= min_return):
            continue
        if max_return is not None and (total is None or not total <= max_return):
            continue
        if terminated is not None and row["terminated"] != bool(terminated):
            continue
        if where is not None:
            try:
                keep = where(row)
            except Exception as e:
                raise ValueError(
                    f"where raised {type(e).__name__} on episode {row['episode']} of split "
                    f"{split!r}: {e}"
                ) from e
            if not keep:
                continue
        selected.append(row["episode"])
    return selected


def _is_number(value: Any) -> bool:
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return False
