"""Per-process caches: opened datasets (by count) and decoded episodes (by bytes).

Keys include the dataset row's token (new with every write, never reused), so a re-indexed
or replaced dataset is never answered from what was kept about another.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

Value = TypeVar("Value")


class LRUCache(Generic[Value]):
    """A thread-safe least-recently-used cache bounded by the total ``weigh(value)``."""

    def __init__(self, capacity: int, weigh: Callable[[Any], int] = lambda _: 1):
        self.capacity = capacity
        self._weigh = weigh
        self._entries: collections.OrderedDict[Any, tuple[Value, int]] = collections.OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: Any) -> Value | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Any, value: Value) -> Value:
        weight = self._weigh(value)
        if weight > self.capacity:
            return value  # too big to keep: the caller still gets it
        with self._lock:
            if key in self._entries:
                self._total -= self._entries.pop(key)[1]
            self._entries[key] = (value, weight)
            self._total += weight
            while self._total > self.capacity:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._total -= dropped
        return value

    def get_or_load(self, key: Any, load: Callable[[], Value]) -> Value:
        value = self.get(key)
        return self.put(key, load()) if value is None else value

    def discard(self, predicate: Callable[[Any], bool]) -> None:
        with self._lock:
            for key in [k for k in self._entries if predicate(k)]:
                self._total -= self._entries.pop(key)[1]
