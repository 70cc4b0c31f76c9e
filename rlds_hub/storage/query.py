"""Selecting episodes: by index, by TFDS split slice, by predicate and by length, return and
termination filters — the rules every reader shares (``rlds_hub.load``, the batch loaders,
statistics, the pipelines, the service)."""

from __future__ import annotations

import os
from typing import Any

from rlds_hub.storage.dataset import RLDSDataset
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.episodes import episode_table, table_plan
from rlds_hub.storage.filters import RowFilter, Where, check_filters
from rlds_hub.storage.names import as_dataset
from rlds_hub.storage.selection import (
    EpisodeSpec,
    Selection,
    episode_indices,
    parse_split,
    slice_indices,
)


def select_episodes(
    source: str | os.PathLike | RLDSDataset,
    split: str = "train",
    *,
    where: Where = None,
    min_length: int | None = None,
    max_length: int | None = None,
    min_return: float | None = None,
    max_return: float | None = None,
    terminated: bool | None = None,
    episodes: EpisodeSpec = None,
) -> list[int]:
    """Indices (ascending) of the episodes of ``split`` that pass every given filter.

    Args:
      source: a dataset directory, a dataset name or an already opened ``RLDSDataset``.
      split: the split.
      where: a predicate called with each episode's :func:`episode_table` row, e.g.
        ``lambda e: e["metadata"]["operator"] == "alice"``.
      min_length / max_length: inclusive bounds on the episode length in RLDS *steps*
        (``num_steps``: N + 1 for an episode of N transitions in the RLDS layout).
      min_return / max_return: inclusive bounds on the return (an episode whose return is
        NaN passes no return bound). Only for datasets whose reward is a scalar number.
      terminated: True for terminated episodes only, False for truncated ones only.
      episodes: consider only these episodes (an int, range, slice or sequence of
        indices), applied before the other filters (``where`` is called only on these).

    Raises:
      ValueError: inverted bounds, return bounds on a non-scalar reward, or ``where``
        raised (the message names the episode).
      DatasetError: not a dataset, no such split, or an episode index out of range.
    """
    keep = RowFilter(
        min_length=min_length,
        max_length=max_length,
        min_return=min_return,
        max_return=max_return,
        terminated=terminated,
        where=where,
    )
    dataset = as_dataset(source, "select_episodes()", selection=False)
    if keep.bounds_return and table_plan(dataset).reward_key is None:
        raise ValueError(
            "min_return / max_return need a scalar numeric reward; this dataset's reward is not "
            "one, so episodes have no return (filter with where= instead)"
        )
    rows = episode_table(dataset, split, episodes=episodes)
    return [row["episode"] for row in rows if keep.matches(row, split)]


def select_splits(
    source: str | os.PathLike | RLDSDataset,
    split: str = "train",
    *,
    episodes: EpisodeSpec = None,
    where: Where = None,
    **filters: Any,
) -> list[Selection]:
    """Like :func:`select`, for TFDS split syntax joining several splits with ``+``: one
    :class:`Selection` per part, in order."""
    check_filters(filters)
    dataset = as_dataset(source, "select()", selection=False)
    if not isinstance(split, str):
        raise TypeError(f"split must be a string such as 'train' or 'train[:80%]', got {split!r}")
    parts = parse_split(split)
    if episodes is not None and (len(parts) > 1 or parts[0][1] != (None, None, "abs")):
        raise DatasetError(
            f"pass either a split slice ({split!r}) or episodes=, not both: they both choose "
            "episodes by position"
        )
    selections = []
    for name, bounds in parts:
        info = dataset.split(name)
        chosen: Any = episodes
        if bounds != (None, None, "abs"):
            chosen = slice_indices(bounds, info.num_episodes, info.shard_lengths)
        if where is None and not filters:
            found = episode_indices(chosen, info.num_episodes)
            indices = None if found is None else tuple(int(i) for i in found)
        else:
            indices = tuple(select_episodes(dataset, name, where=where, episodes=chosen, **filters))
        selections.append(Selection(dataset, name, indices))
    return selections


def select(
    source: str | os.PathLike | RLDSDataset | Selection,
    split: str = "train",
    *,
    episodes: EpisodeSpec = None,
    where: Where = None,
    **filters: Any,
) -> Selection:
    """Selects episodes of one split: TFDS slice syntax (``"train[:80%]"``), an index
    range/slice/sequence (``episodes``; negative indices count from the end), a predicate on
    each episode's row of :func:`episode_table` (``where``), and the filters of
    :func:`select_episodes` (``min_length``, ``max_return``, ...). Without any of them,
    every episode of the split.

    Raises:
      TypeError: an unknown filter (the valid ones are named).
      DatasetError: an unknown split, indices out of range, or several splits joined with
        ``+`` (use :func:`select_splits`).
    """
    if isinstance(source, Selection):
        if episodes is not None or where is not None or filters:
            raise ValueError("pass either a Selection or episode filters, not both")
        return source
    selections = select_splits(source, split, episodes=episodes, where=where, **filters)
    if len(selections) > 1:
        raise DatasetError(
            f"{split!r} names several splits; the batch loaders read one split at a time "
            "(make one loader per split)"
        )
    return selections[0]
