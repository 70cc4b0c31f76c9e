"""Read queries on the index: datasets by name or search, episodes by filters.

Filters and orderings are built from a whitelist of columns and operators, with every value
a bound parameter: nothing a client sends becomes SQL text. Totals of filtered episode
lists are cached per process, keyed by the dataset row's token (new with every write of the
row, never reused),
so paging through one filtered list counts its rows once.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, exists, func, or_, select, tuple_
from sqlalchemy.sql import ColumnElement

from rlds_hub.server.core.cache import LRUCache
from rlds_hub.server.index.models import DatasetRow, EpisodeRow, EpisodeValueRow

DATASETS = DatasetRow.__table__
EPISODES = EpisodeRow.__table__
VALUES = EpisodeValueRow.__table__

# Columns of the dataset list (the big JSON documents are left to the detail query).
LIST_COLUMNS = [
    DATASETS.c[name]
    for name in (
        "id",
        "name",
        "path",
        "root",
        "status",
        "error",
        "tfds_name",
        "version",
        "file_format",
        "layout",
        "num_episodes",
        "num_steps",
        "num_transitions",
        "size_bytes",
        "splits",
        "indexed_at",
        "provenance",
    )
]
_SHIFT = 40  # result-set keys: split number << 40 | episode index
_MASK = (1 << _SHIFT) - 1
DIRECT_OFFSET = 2000  # a page this deep reads the list's ordered keys at once
SLOW_PAGE_SECONDS = 0.02  # a direct page query this slow: read the list's keys next time
ORDERINGS = ("index", "-index", "length", "-length", "return", "-return")
OPERATORS = ("=", "!=", ">=", "<=", ">", "<")
# Episode-metadata conditions one list may combine (each is a subquery per candidate row).
MAX_CONDITIONS = 8
_CONDITION_RE = re.compile(
    r"^(?P<key>[A-Za-z0-9_./-]{1,255})(?P<op>!=|>=|<=|=|>|<)(?P<value>.*)$", re.DOTALL
)
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class FilterError(ValueError):
    """A filter the client got wrong (the message says how to write it)."""


@dataclasses.dataclass(frozen=True)
class Condition:
    """``<metadata field> <op> <value>`` on one episode-metadata field."""

    key: str
    op: str
    value: float | str

    @classmethod
    def parse(cls, text: str, fields: dict[str, str]) -> Condition:
        match = _CONDITION_RE.match(text)
        if not match:
            raise FilterError(
                f"meta={text!r} is not a condition: write <field><op><value> with op one of "
                f"{' '.join(OPERATORS)}, e.g. meta=success=true or meta=episode_id>=10"
            )
        key, op, raw = match["key"], match["op"], match["value"]
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise FilterError(f"meta: {key!r} is not an episode-metadata field (fields: {known})")
        kind = fields[key]
        if kind == "text":
            if len(raw) > 1000:
                raise FilterError(f"meta: the value for {key!r} is longer than 1000 characters")
            return cls(key, op, raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise FilterError(f"meta: {key!r} is true or false, got {raw!r}")
            return cls(key, op, 1.0 if lowered in _TRUE else 0.0)
        try:
            number = float(raw)
        except ValueError:
            raise FilterError(f"meta: {key!r} is a number, got {raw!r}") from None
        if number != number:
            raise FilterError(f"meta: compare {key!r} with a number, not NaN")
        return cls(key, op, number)

    def clause(self) -> ColumnElement[bool]:
        column = VALUES.c.text if isinstance(self.value, str) else VALUES.c.number
        comparisons = {
            "=": column == self.value,
            "!=": column != self.value,
            ">=": column >= self.value,
            "<=": column <= self.value,
            ">": column > self.value,
            "<": column < self.value,
        }
        return comparisons[self.op]


@dataclasses.dataclass(frozen=True)
class EpisodeFilter:
    """Which episodes of a dataset a list shows (all bounds inclusive)."""

    split: str | None = None
    min_return: float | None = None
    max_return: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    terminated: bool | None = None
    conditions: tuple[Condition, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self == EpisodeFilter(split=self.split)

    def clauses(self, dataset_id: int, *, counting: bool = False) -> list[ColumnElement[bool]]:
        """WHERE clauses. Metadata conditions are ``IN`` subqueries when ``counting`` (the
        planner then counts from the values' index) and correlated ``EXISTS`` otherwise (a
        page is then read in the ordering's index, probing each row's values)."""
        e = EPISODES.c
        out: list[ColumnElement[bool]] = [e.dataset_id == dataset_id]
        if self.split is not None:
            out.append(e.split == self.split)
        if self.min_return is not None:
            out.append(e.return_value >= self.min_return)
        if self.max_return is not None:
            out.append(e.return_value <= self.max_return)
        if self.min_length is not None:
            out.append(e.length >= self.min_length)
        if self.max_length is not None:
            out.append(e.length <= self.max_length)
        if self.terminated is not None:
            out.append(e.is_terminal == self.terminated)
        for condition in self.conditions:
            if counting:
                matching = select(VALUES.c.split, VALUES.c.episode).where(
                    VALUES.c.dataset_id == dataset_id,
                    VALUES.c.key == condition.key,
                    condition.clause(),
                )
                if self.split is not None:
                    matching = matching.where(VALUES.c.split == self.split)
                out.append(tuple_(e.split, e.episode).in_(matching))
            else:
                out.append(
                    exists().where(
                        VALUES.c.dataset_id == e.dataset_id,
                        VALUES.c.split == e.split,
                        VALUES.c.episode == e.episode,
                        VALUES.c.key == condition.key,
                        condition.clause(),
                    )
                )
        return out


def _order(order_by: str) -> list[Any]:
    if order_by not in ORDERINGS:
        raise FilterError(f"order_by must be one of {', '.join(ORDERINGS)}, got {order_by!r}")
    e = EPISODES.c
    descending = order_by.startswith("-")
    column = {"index": None, "length": e.length, "return": e.return_value}[order_by.lstrip("-")]
    tie = [e.split.desc(), e.episode.desc()] if descending else [e.split, e.episode]
    if column is None:
        return tie
    primary = column.desc() if descending else column.asc()
    return [primary.nulls_last(), *tie]


class CountCache:
    """Totals of filtered episode lists, keyed by (dataset, token, filter)."""

    def __init__(self, size: int = 4096):
        self._size = size
        self._entries: collections.OrderedDict[Any, int] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> int | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Any, value: int) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


def dataset_by_name(connection: Connection, name: str) -> Any:
    return connection.execute(select(DATASETS).where(DATASETS.c.name == name)).first()


def search_datasets(
    connection: Connection, q: str | None, limit: int, offset: int
) -> tuple[Sequence[Any], int]:
    """Datasets whose name, description or metadata contains every word of ``q``
    (case-insensitive substrings; ``:`` and LIKE's wildcards are plain characters). The
    name is the index's own (``oxe:bridge:0.1.0``, what the list shows), searched besides
    the TFDS name and metadata in ``search_text``."""
    where = []
    name = func.lower(DATASETS.c.name)
    for word in (q or "").lower().split():
        where.append(
            or_(
                name.contains(word, autoescape=True),
                DATASETS.c.search_text.contains(word, autoescape=True),
            )
        )
    condition = and_(*where) if where else None
    query = select(*LIST_COLUMNS).order_by(DATASETS.c.name).limit(limit).offset(offset)
    count = select(func.count()).select_from(DATASETS)
    if condition is not None:
        query, count = query.where(condition), count.where(condition)
    rows = connection.execute(query).all()
    return rows, int(connection.execute(count).scalar_one())


class ResultSets:
    """The ordered keys of filtered lists whose direct page query was slow (a filter that
    rejects most rows of the ordering's index) or that are paged deeply: their pages are then
    slices of the keys, read by primary key at any offset, and their total is the number of
    keys. Other lists are answered by direct queries (cheapest when the plan is good)."""

    def __init__(self, capacity_bytes: int):
        self._sets: LRUCache[np.ndarray] = LRUCache(capacity_bytes, lambda a: a.nbytes)
        self._slow: LRUCache[bool] = LRUCache(8192)

    def keys(self, key: Any) -> np.ndarray | None:
        return self._sets.get(key)

    def wanted(self, key: Any, offset: int) -> bool:
        """Whether to read the list's keys now: a deep page, or a list whose direct page
        query was slow."""
        return offset >= DIRECT_OFFSET or self._slow.get(key) is not None

    def timed(self, key: Any, seconds: float) -> None:
        """Notes how long a direct page query of the list took."""
        if seconds >= SLOW_PAGE_SECONDS:
            self._slow.put(key, True)

    def put(self, key: Any, keys: np.ndarray) -> np.ndarray:
        return self._sets.put(key, keys)


def list_episodes(
    connection: Connection,
    dataset: Any,
    episode_filter: EpisodeFilter,
    order_by: str,
    limit: int,
    offset: int,
    counts: CountCache,
    results: ResultSets | None = None,
) -> tuple[Sequence[Any], int]:
    """A page of the dataset's episodes passing the filter, and how many pass it."""
    if results is not None and not (episode_filter.is_empty and order_by == "index"):
        key = (dataset.id, dataset.token, episode_filter, order_by)
        keys = results.keys(key)
        if keys is None and results.wanted(key, offset):
            keys = results.put(key, _ordered_keys(connection, dataset, episode_filter, order_by))
        if keys is not None:
            return _rows_by_key(connection, dataset, keys[offset : offset + limit]), len(keys)
    clauses = episode_filter.clauses(dataset.id)
    query = select(EPISODES).where(*clauses).order_by(*_order(order_by)).limit(limit).offset(offset)
    started = time.perf_counter()
    rows = connection.execute(query).all()
    if results is not None:
        results.timed(
            (dataset.id, dataset.token, episode_filter, order_by), time.perf_counter() - started
        )
    total = _unfiltered_total(dataset, episode_filter)
    if total is None:
        key = (dataset.id, dataset.token, episode_filter)
        total = counts.get(key)
        if total is None:
            counting = episode_filter.clauses(dataset.id, counting=True)
            total = int(
                connection.execute(
                    select(func.count()).select_from(EPISODES).where(*counting)
                ).scalar_one()
            )
            counts.put(key, total)
    return rows, total


def _split_names(dataset: Any) -> list[str]:
    return sorted(dataset.splits or {})


def _ordered_keys(
    connection: Connection, dataset: Any, episode_filter: EpisodeFilter, order_by: str
) -> np.ndarray:
    """Every matching episode as ``split number << 40 | index``, in the list's order."""
    number = {name: i for i, name in enumerate(_split_names(dataset))}
    query = (
        select(EPISODES.c.split, EPISODES.c.episode)
        .where(*episode_filter.clauses(dataset.id, counting=True))
        .order_by(*_order(order_by))
    )
    rows = connection.execute(query).all()
    return np.fromiter(
        ((number[split] << _SHIFT) | episode for split, episode in rows),
        dtype=np.int64,
        count=len(rows),
    )


def _rows_by_key(connection: Connection, dataset: Any, keys: np.ndarray) -> list[Any]:
    """The episode rows of ``keys``, in their order (primary-key lookups per split)."""
    if not len(keys):
        return []
    names = _split_names(dataset)
    pairs = [(names[int(k) >> _SHIFT], int(k) & _MASK) for k in keys]
    by_split: dict[str, list[int]] = {}
    for split, index in pairs:
        by_split.setdefault(split, []).append(index)
    e = EPISODES.c
    found = {
        (r.split, r.episode): r
        for split, indices in by_split.items()
        for r in connection.execute(
            select(EPISODES).where(
                e.dataset_id == dataset.id, e.split == split, e.episode.in_(indices)
            )
        )
    }
    return [found[pair] for pair in pairs if pair in found]


def _unfiltered_total(dataset: Any, episode_filter: EpisodeFilter) -> int | None:
    if not episode_filter.is_empty:
        return None
    splits = dataset.splits or {}
    if episode_filter.split is None:
        return int(dataset.num_episodes)
    entry = splits.get(episode_filter.split)
    return int(entry.get("episodes", 0)) if entry else 0


def episode(connection: Connection, dataset_id: int, split: str, index: int) -> Any:
    return connection.execute(
        select(EPISODES).where(
            EPISODES.c.dataset_id == dataset_id,
            EPISODES.c.split == split,
            EPISODES.c.episode == index,
        )
    ).first()
