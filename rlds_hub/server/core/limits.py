"""Bounded resources that requests share, so that a few expensive requests cannot starve
the rest:

- :class:`QueryPool`: the threads that run uncached filtered episode queries and searches,
  apart from the worker threads that serve details, cached pages and reads. A query waits
  (in the event loop, holding no thread) for one of them; beyond ``queue`` waiting
  queries, a request gets 503 ``busy`` with ``Retry-After``.
- :class:`ByteBudget`: the bytes of bulk step slices in flight (decoded arrays being
  encoded and streamed). A slice waits briefly for its share, then gets 503 ``busy``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from rlds_hub.server.core.errors import ApiError

Result = TypeVar("Result")


def busy(what: str, retry_after: int) -> ApiError:
    return ApiError(
        503,
        "busy",
        f"the server is busy with other {what}: try again in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


class QueryPool:
    """``threads`` threads for expensive index queries, and at most ``queue`` waiting."""

    def __init__(self, threads: int, queue: int):
        self.threads = threads
        self.queue = queue
        self.pending = 0  # queries running or waiting (changed on the event loop only)
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, function: Callable[..., Result], *args: Any) -> Result:
        """``function(*args)`` in one of the pool's threads; 503 if too many wait."""
        if self.pending >= self.threads + self.queue:
            raise busy("filtered queries", 1)
        if self._limiter is None:  # made on first use: it belongs to the running loop
            self._limiter = anyio.CapacityLimiter(self.threads)
        self.pending += 1
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=self._limiter)
        finally:
            self.pending -= 1


class ByteBudget:
    """At most ``capacity`` bytes reserved at once. A reservation larger than the whole
    budget is granted when nothing else is reserved (it then runs alone)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0  # the most ever reserved at once (for tests and metrics)
        self._lock = threading.Lock()

    def try_reserve(self, size: int) -> int | None:
        """Reserves ``size`` bytes (capped at the capacity) if they are free now; the amount
        reserved, or None."""
        size = min(max(size, 0), self.capacity)
        with self._lock:
            if self.in_use + size > self.capacity:
                return None
            self.in_use += size
            self.peak = max(self.peak, self.in_use)
            return size

    async def reserve(self, size: int, wait: float) -> int:
        """Reserves ``size`` bytes, waiting up to ``wait`` seconds for them (on the event
        loop); 503 ``busy`` if they did not come free."""
        waited = 0.0
        step = 0.02
        while True:
            reserved = self.try_reserve(size)
            if reserved is not None:
                return reserved
            if waited >= wait:
                raise busy("bulk downloads", max(1, math.ceil(wait)))
            await anyio.sleep(step)
            waited += step

    def release(self, size: int) -> None:
        with self._lock:
            self.in_use -= size
