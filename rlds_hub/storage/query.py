"""Selecting episodes: by index, by TFDS split slice, by predicate and by length, return and
termination filters — the rules every reader shares (``rlds_hub.load``, the batch loaders,
statistics, the pipelines, the service)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlds_hub.storage.dataset import RLDSDataset
from rlds_hub.storage.episodes import as_dataset, episode_table, is_number, table_plan
from rlds_hub.storage.layout import DatasetError
from rlds_hub.storage.selection import (
    EpisodeSpec,
    Selection,
    episode_indices,
    parse_split,
    slice_indices,
)

Where = Callable[[dict[str, Any]], Any] | None
FILTERS = ("min_length", "max_length", "min_return", "max_return", "terminated")


def check_filters(filters: Mapping[str, Any], function: str = "select") -> None:
    """Raises a ``TypeError`` naming the valid filters for an unknown one (with a
    suggestion for a misspelling)."""
    unknown = [name for name in filters if name not in FILTERS]
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, [*FILTERS, "episodes", "where", "split"], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise TypeError(
        f"{function}() got an unknown filter {name!r}.{hint} Filters are "
        f"{', '.join(FILTERS)}, plus episodes= (indices) and where= (a predicate on each "
        "episode's row)"
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
      source: a dataset directory or an already opened ``RLDSDataset``.
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
    for low, high, what in ((min_length, max_length, "length"), (min_return, max_return, "return")):
        for bound in (low, high):
            if bound is not None and (isinstance(bound, bool) or not is_number(bound)):
                raise ValueError(f"{what} bounds must be numbers, got {bound!r}")
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_{what} ({low}) is greater than max_{what} ({high})")
    if terminated is not None and not isinstance(terminated, bool | np.bool_):
        raise ValueError(f"terminated must be True, False or None, got {terminated!r}")
    if where is not None and not callable(where):
        raise ValueError(f"where must be a callable taking an episode row, got {where!r}")

    dataset = as_dataset(source)
    if (min_return is not None or max_return is not None) and table_plan(
        dataset
    ).reward_key is None:
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
    dataset = as_dataset(source)
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
