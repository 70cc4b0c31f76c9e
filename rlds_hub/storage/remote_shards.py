"""TFRecord shards in object stores, read with few requests.

- Record offsets (:func:`offsets`): TFRecord has no index, so the headers are walked with
  ranged GETs of :data:`WINDOW` bytes, each yielding every header it covers (one request per
  window or per record larger than it). Found once per object version: cached per process and,
  if ``RLDS_HUB_OFFSET_CACHE`` names a directory, on disk — keyed by the object's URL, size
  and ETag, so a replaced object is never read with stale offsets.
- One record (:func:`read_record`): one ranged GET, pinned to the ETag its offsets were
  found with (an object replaced since is an :class:`~.remote.ObjectChangedError`).
- Whole shards ahead of a reader (:class:`Prefetch`): the next shards of an epoch fetched in
  parallel while the current one is decoded, so request latency is hidden.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from rlds_hub.storage import remote
from rlds_hub.storage.tfrecord import FRAMING, HEADER, ShardError, framed_data, record_length

WINDOW = 256 * 1024  # bytes per ranged GET while walking record headers
PREFETCH_DEPTH = 8  # shards fetched ahead of a reader, at most
PREFETCH_BYTES = 512 * 2**20  # ... and at most about this many bytes of them
CACHE_VARIABLE = "RLDS_HUB_OFFSET_CACHE"
_MEMORY_ENTRIES = 4096


@dataclasses.dataclass(frozen=True)
class ShardIndex:
    """A remote TFRecord shard's version and its records' ``(offset, data length)``."""

    url: str
    size: int
    etag: str | None
    records: tuple[tuple[int, int], ...]


_memory: collections.OrderedDict[str, ShardIndex] = collections.OrderedDict()
_memory_lock = threading.Lock()


def _remember(index: ShardIndex) -> None:
    with _memory_lock:
        _memory[index.url] = index
        _memory.move_to_end(index.url)
        while len(_memory) > _MEMORY_ENTRIES:
            _memory.popitem(last=False)


def forget(url: str) -> None:
    """Drops ``url``'s offsets from the process cache (its object changed)."""
    with _memory_lock:
        _memory.pop(url, None)


def clear_memory_cache() -> None:
    with _memory_lock:
        _memory.clear()


def _disk_path(url: str, size: int, etag: str | None) -> Path | None:
    directory = os.environ.get(CACHE_VARIABLE)
    if not directory or etag is None:
        return None  # without a version tag a cached entry could not be trusted
    key = hashlib.sha256(f"{remote.redact(url)}\0{size}\0{etag}".encode()).hexdigest()
    return Path(directory) / f"{key}.json"


def _load(path: Path | None, url: str, size: int, etag: str | None) -> ShardIndex | None:
    if path is None or not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
        records = tuple((int(o), int(n)) for o, n in entry["records"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged cache entry is recomputed
    return ShardIndex(url, size, etag, records)


def _save(path: Path | None, index: ShardIndex) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump({"records": index.records}, f)
    os.replace(temporary, path)


def offsets(url: str) -> ShardIndex:
    """The record offsets of the TFRecord object ``url`` (cached; see the module's doc).

    Raises:
      ShardError: the object is missing, or a header is truncated or corrupt.
      RemoteError: the store refused or failed the requests.
    """
    with _memory_lock:
        cached = _memory.get(url)
    if cached is not None:
        return cached
    store = remote.store(url)
    try:
        stat = store.stat(url)
    except FileNotFoundError as e:
        raise ShardError(f"{remote.redact(url)}: the shard file is missing") from e
    disk = _disk_path(url, stat.size, stat.etag)
    index = _load(disk, url, stat.size, stat.etag)
    if index is None:
        index = ShardIndex(url, stat.size, stat.etag, _walk(store, url, stat))
        _save(disk, index)
    _remember(index)
    return index


def _walk(store: remote.ObjectStore, url: str, stat: remote.ObjectStat) -> tuple:
    """Every record's ``(offset, length)`` from its header, one ranged GET per window."""
    records: list[tuple[int, int]] = []
    offset = 0
    while offset < stat.size:
        start = offset
        window, _ = _get(store, url, start, min(stat.size, start + WINDOW), stat.etag)
        while offset + HEADER <= start + len(window):
            local = offset - start
            length = record_length(url, window[local : local + HEADER], offset, len(records))
            if offset + FRAMING + length > stat.size:
                raise ShardError(
                    f"{remote.redact(url)}: truncated record at byte {offset} (record "
                    f"{len(records)}, {length} bytes expected)"
                )
            records.append((offset, length))
            offset += FRAMING + length
        if offset == start:  # fewer than 12 bytes left before the end
            raise ShardError(
                f"{remote.redact(url)}: truncated record header at byte {offset} (record "
                f"{len(records)})"
            )
    return tuple(records)


def _get(
    store: remote.ObjectStore, url: str, start: int | None, end: int | None, etag: str | None
) -> tuple[bytes, str | None]:
    try:
        return store.read(url, start, end, etag=etag)
    except FileNotFoundError as e:
        forget(url)
        raise ShardError(f"{remote.redact(url)}: the shard file is missing") from e
    except remote.ObjectChangedError:
        forget(url)
        raise


def read_record(url: str, position: int) -> bytes:
    """Record ``position`` of the TFRecord object ``url`` in one ranged GET (after its
    offsets are known), both CRCs checked.

    Raises:
      ShardError: no such position, or a truncated or corrupt record.
      ObjectChangedError: the object was replaced since its offsets were read.
    """
    index = offsets(url)
    if not 0 <= position < len(index.records):
        raise ShardError(
            f"{remote.redact(url)} holds {len(index.records)} records; there is no record "
            f"{position}"
        )
    start, length = index.records[position]
    frame, _ = _get(remote.store(url), url, start, start + length + FRAMING, index.etag)
    return framed_data(url, frame, start, position, length)


def read_object(url: str) -> bytes:
    """The whole object ``url`` in one GET.

    Raises:
      ShardError: the object is missing. RemoteError: see :meth:`.remote.ObjectStore.read`.
    """
    data, _ = _get(remote.store(url), url, None, None, None)
    return data


class Prefetch:
    """Whole shards fetched ahead of a reader that takes them in ``paths`` order (local
    paths are not fetched: :meth:`take` returns None for them). At most ``depth`` shards
    are in flight or waiting, and no more than :data:`PREFETCH_BYTES` of them at the size of
    the largest shard seen, or ``shard_bytes`` (an estimate, e.g. from ``dataset_info.json``)
    until one arrives (without it: two)."""

    def __init__(
        self, paths: Sequence[str], depth: int = PREFETCH_DEPTH, *, shard_bytes: int = 0
    ) -> None:
        unique = list(dict.fromkeys(p for p in paths if remote.is_remote(p)))
        self._pending = collections.deque(unique)
        self._futures: dict[str, concurrent.futures.Future] = {}
        self._pool = (
            concurrent.futures.ThreadPoolExecutor(
                max_workers=depth, thread_name_prefix="rlds-prefetch"
            )
            if unique
            else None
        )
        self._depth = depth
        self._largest = max(0, int(shard_bytes))
        self._fill()

    @property
    def in_flight(self) -> int:
        """Shards being fetched or fetched and not taken yet."""
        return len(self._futures)

    def _limit(self) -> int:
        if not self._largest:
            return min(2, self._depth)
        return max(1, min(self._depth, PREFETCH_BYTES // self._largest))

    def _fill(self) -> None:
        while self._pool is not None and self._pending and len(self._futures) < self._limit():
            path = self._pending.popleft()
            self._futures[path] = self._pool.submit(read_object, path)

    def take(self, path: str) -> bytes | None:
        """``path``'s bytes if it was fetched ahead (its errors raised here), else None."""
        future = self._futures.pop(path, None)
        if future is None:
            return None
        try:
            data = future.result()
            self._largest = max(self._largest, len(data))
            return data
        finally:
            self._fill()

    def close(self) -> None:
        """Cancels what is not fetched yet."""
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
