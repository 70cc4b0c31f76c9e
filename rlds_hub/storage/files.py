"""File access for readers: local paths directly; ``s3://``, ``gs://`` and ``https://`` objects
through :mod:`rlds_hub.storage.remote` (fsspec's clients: counted, retried requests, one per
operation; errors that name the object).

Nothing here imports TensorFlow. Local files are read only if they are
regular files, and never beyond the size they had when opened; ``within`` (a dataset's
resolved directory) confines a read to that directory (see :mod:`.containment`).
"""

from __future__ import annotations

import fnmatch
import mmap
import os
from typing import Any

from rlds_hub.storage import remote
from rlds_hub.storage.containment import open_regular


def is_remote(path: str | os.PathLike) -> bool:
    return remote.is_remote(path)


def join(path: str | os.PathLike, *parts: str) -> str:
    return os.path.join(os.fspath(path), *parts)


def exists(path: str | os.PathLike) -> bool:
    text = os.fspath(path)
    return remote.store(text).exists(text) if is_remote(text) else os.path.exists(text)


def isdir(path: str | os.PathLike) -> bool:
    text = os.fspath(path)
    return remote.store(text).isdir(text) if is_remote(text) else os.path.isdir(text)


def listdir(path: str | os.PathLike) -> list[str]:
    """Entry names of a directory (sorted)."""
    text = os.fspath(path)
    if is_remote(text):
        return remote.store(text).listdir(text)
    return sorted(os.listdir(text))


def read_bytes(path: str | os.PathLike, *, within: str | None = None) -> bytes:
    """A whole file's bytes (a local one: a regular file, inside ``within`` if given).

    Raises:
      DatasetError: a local file outside ``within`` or not a regular file.
    """
    text = os.fspath(path)
    if is_remote(text):
        return remote.store(text).read(text)[0]
    with open_regular(text, within) as f:
        return _read_size(f)


def _read_size(f: Any) -> bytes:
    """At most the file's size (as it was when opened): a file that grows is not followed."""
    size = os.fstat(f.fileno()).st_size
    return f.read(size) if size else b""


# Local files at least this large are mapped instead of read (see map_bytes).
MAP_AT_LEAST = 1 << 20
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def map_bytes(path: str | os.PathLike, *, within: str | None = None) -> bytes | memoryview:
    """A whole file's bytes, for reading: a local file of ``MAP_AT_LEAST`` bytes or more as a
    read-only memory map of the page cache, populated up front. Reading a file into new
    memory costs a copy and a page fault per 4 KiB page: for the shards of a dataset that is
    most of the time a loader spends on I/O (docs/benchmarks.md, "Before and after the
    format core").

    The views stay valid while anything references them, also after the file is replaced
    or deleted (datasets replace files by rename; no listed shard is written in place).

    Raises:
      DatasetError: a local file outside ``within`` or not a regular file.
    """
    text = os.fspath(path)
    if is_remote(text):
        return remote.store(text).read(text)[0]
    with open_regular(text, within) as f:
        size = os.fstat(f.fileno()).st_size
        if size < MAP_AT_LEAST:
            return f.read(size) if size else b""
        mapped = mmap.mmap(f.fileno(), size, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ)
    return memoryview(mapped)


def read_optional(urls: list[str]) -> list[bytes | None]:
    """The bytes of each remote object of ``urls`` (one store), None where it does not
    exist, read in parallel (one round trip)."""
    if not urls:
        return []
    found = remote.store(urls[0]).read_many([(u, None, None, None) for u in urls], missing_ok=True)
    return [None if f is None else f[0] for f in found]


def remote_sizes(url: str) -> dict[str, int]:
    """``{name: size}`` of the objects directly under the remote ``url`` (one listing where
    the store's listing gives sizes).

    Raises:
      FileNotFoundError: the server lists nothing there (e.g. a bucket's HTTPS URL).
    """
    return remote.store(url).list_sizes(url)


def read_text(path: str | os.PathLike, *, within: str | None = None) -> str:
    return read_bytes(path, within=within).decode("utf-8")


def size(path: str | os.PathLike) -> int:
    text = os.fspath(path)
    if is_remote(text):
        return remote.store(text).stat(text).size
    return os.path.getsize(text)


def matching(directory: str | os.PathLike, pattern: str) -> list[str]:
    """Names in ``directory`` matching the shell ``pattern``."""
    return [name for name in listdir(directory) if fnmatch.fnmatchcase(name, pattern)]
