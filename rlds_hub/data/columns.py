"""Decoded columns of a shard, cached on local disk, so the loaders' epochs skip decoding.

The loaders' cost per epoch was mostly Python walking serialized episodes
(docs/benchmarks.md, "Reading"). The first time a loader reads a shard, every numeric leaf
of its episodes (step leaves ``[steps, ...]``, episode leaves ``[episodes, ...]``) is
decoded once with the one decoder and written as ``.npy`` files; later reads memory-map
them and concatenate slices, which costs a copy instead of a decode. The dataset on disk is
never touched.

- Where: ``$RLDS_HUB_COLUMN_CACHE`` (a directory; ``off`` disables the cache), else
  ``$XDG_CACHE_HOME/rlds_hub/columns`` or ``~/.cache/rlds_hub/columns``. Shards smaller than
  ``$RLDS_HUB_COLUMN_CACHE_MIN_BYTES`` (default 1 MiB) are not cached: they decode fast.
- Entries: ``<hash of the shard's real path and the cached leaves>/<identity hash>/``,
  holding ``columns.bin`` (every leaf's values, C order, 64-byte aligned) and
  ``manifest.json`` (each column's offset, dtype, shape and CRC32C), written in a hidden
  directory and renamed into place, so an entry is complete or absent.
- Invalidation: the identity is the shard's size, modification time, inode and the
  CRC32C of its first and last 64 KiB, so a rewritten shard gets a new entry (and the
  stale ones of the same shard are removed when it is built; the first build in a process
  also removes the entries of shards that no longer exist). Opening an entry checks the
  manifest and the CRC32C of every column read — once per process and version (device,
  inode, size, mtime) of the entry's file (:func:`check_crc`); a corrupt or truncated
  entry is removed and rebuilt.
- Strings are never cached, nor are shards with an episode that does not decode (the loader
  then reports it as before). Camera frames are cached decoded (uint8, lossless: the pixels
  the decoder gives) only with ``$RLDS_HUB_FRAME_CACHE=1``: they take ``H x W x C`` bytes
  each on disk, 5-10x their JPEG / PNG, and reading them is a copy instead of a decode
  (docs/loading.md, "Camera datasets at the decode limit"); without it a loader that reads
  frames decodes as before.
- Transitions loaders also keep the step columns of all the shards they read joined once,
  with their one-step transitions precomputed, under ``joined/`` (:mod:`rlds_hub.data.joined`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mmap
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import crc32c
import numpy as np

from rlds_hub.format.decode import NUM_STEPS, EpisodeDecoder, ParseError
from rlds_hub.format.images import ImageDecodeError
from rlds_hub.format.plan import Leaf, LeafKind, Plan
from rlds_hub.storage import shards
from rlds_hub.storage.dataset import RLDSDataset
from rlds_hub.storage.selection import ShardRead

CACHE_ENV = "RLDS_HUB_COLUMN_CACHE"
FRAMES_ENV = "RLDS_HUB_FRAME_CACHE"
MIN_BYTES_ENV = "RLDS_HUB_COLUMN_CACHE_MIN_BYTES"
DEFAULT_MIN_BYTES = 1 << 20
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATA = "columns.bin"
_EDGE = 64 * 1024
_ALIGN = 64
_MAPPED_BYTES = 4 << 20
_LENGTHS = NUM_STEPS
# page tables filled in one system call, not one fault per page (Linux)
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


class CorruptCacheError(Exception):
    """A cache entry that does not match its manifest (removed and rebuilt by the caller)."""


def cache_root() -> Path | None:
    """The cache directory, or None when ``$RLDS_HUB_COLUMN_CACHE`` is ``off``."""
    value = os.environ.get(CACHE_ENV, "")
    if value.lower() in ("off", "0", "false", "no"):
        return None
    if value:
        return Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rlds_hub" / "columns"


def min_bytes() -> int:
    """Shards smaller than this are not cached."""
    value = os.environ.get(MIN_BYTES_ENV, "")
    try:
        return int(value) if value else DEFAULT_MIN_BYTES
    except ValueError:
        raise ValueError(f"${MIN_BYTES_ENV} must be a number of bytes, got {value!r}") from None


def cache_frames() -> bool:
    """Whether decoded camera frames are cached too (``$RLDS_HUB_FRAME_CACHE=1``)."""
    value = os.environ.get(FRAMES_ENV, "").lower()
    if value in ("", "0", "off", "false", "no"):
        return False
    if value in ("1", "on", "true", "yes"):
        return True
    raise ValueError(f"${FRAMES_ENV} must be 1 (cache decoded frames) or 0, got {value!r}")


def cacheable(leaf: Leaf, frames: bool = False) -> bool:
    """Numbers, and with ``frames`` decoded camera frames; strings are never cached."""
    if leaf.kind == LeafKind.IMAGE:
        return frames
    return leaf.dtype != np.dtype(object)


@dataclasses.dataclass(frozen=True)
class ShardColumns:
    """One shard's decoded columns: ``arrays[key]`` (read-only memory maps; step keys
    ``[steps, ...]``, episode keys ``[episodes, ...]``) and ``starts`` / ``lengths`` of each
    episode's steps."""

    path: str
    lengths: np.ndarray
    starts: np.ndarray
    arrays: Mapping[str, np.ndarray]
    # set when these are views of split-level joined columns (rlds_hub.data.joined): those
    # columns, and this shard's first episode in them
    base: Any = None
    base_episode: int = 0


@dataclasses.dataclass(frozen=True)
class CachedEpisode:
    """An episode to take from cached columns (the loaders' stand-in for its record)."""

    index: int  # in the split
    shard: str
    position: int  # in the shard
    columns: ShardColumns


class ColumnCache:
    """Cached columns of the shards of one dataset for one plan (see the module docstring).

    :meth:`columns` gives a shard's columns, building them on first use; None when the
    cache is off, the plan holds an image or string leaf, the shard is small, or it cannot
    be cached (an episode that does not decode, an unwritable cache directory: warned once).
    """

    def __init__(self, dataset: RLDSDataset, plan: Plan, root: Path | None = None):
        self.dataset = dataset
        self.root = root if root is not None else cache_root()
        self.needed = [leaf.key for leaf in plan.leaves]
        frames = cache_frames()
        self._enabled = self.root is not None and all(
            cacheable(leaf, frames) for leaf in plan.leaves
        )
        # what an entry holds: every numeric leaf (and frame), so loaders of other fields
        # share it
        self._plan = Plan(leaf for leaf in dataset.plan.leaves if cacheable(leaf, frames))
        self._leaves = {leaf.key: leaf for leaf in self._plan.leaves}
        self._opened: dict[str, ShardColumns | None] = {}
        self._min_bytes = min_bytes()
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def entry_plan(self) -> Plan:
        """The leaves an entry holds (every cacheable leaf of the dataset)."""
        return self._plan

    @property
    def min_shard_bytes(self) -> int:
        return self._min_bytes

    def entry_fingerprint(self) -> str:
        """What the entries' keys hold of the leaves (and the format's version)."""
        return self._fingerprint()

    def warn(self, message: str) -> None:
        """Warns (once per cache object) that reading goes on without the cache."""
        self._warn(message)

    def columns(self, read: ShardRead) -> ShardColumns | None:
        """The columns of ``read``'s shard (opened once per cache object)."""
        if not self._enabled:
            return None
        if read.path not in self._opened:
            self._opened[read.path] = self._open_or_build(read)
        return self._opened[read.path]

    def episodes(self, read: ShardRead, columns: ShardColumns) -> list[CachedEpisode]:
        """The episodes of ``read`` as :class:`CachedEpisode` s."""
        return [
            CachedEpisode(read.first + k, read.path, read.skip + k, columns)
            for k in range(read.take)
        ]

    # ---- entries ---------------------------------------------------------------------------

    def shard_columns(self, read: ShardRead, keys: Sequence[str]) -> ShardColumns | None:
        """The columns ``keys`` of ``read``'s shard, its entry opened (or built) again."""
        if not self._enabled:
            return None
        return self._open_or_build(read, keys)

    def _open_or_build(
        self, read: ShardRead, keys: Sequence[str] | None = None
    ) -> ShardColumns | None:
        try:
            real = os.path.realpath(read.path)
            stat = os.stat(real)
            if stat.st_size < self._min_bytes:
                return None
            identity = _identity(real, stat)
        except OSError:
            return None  # the reader reports the shard as it always has
        assert self.root is not None
        group = self.root / _digest([real, self._fingerprint()])
        entry = group / _digest([identity])
        if entry.is_dir():
            try:
                return self._open(entry, identity, read, keys)
            except (CorruptCacheError, OSError, ValueError, KeyError, TypeError):
                _remove(entry)  # corrupt or from another version: rebuilt
        try:
            return self._build(group, entry, identity, read, keys)
        except OSError as e:
            self._warn(f"cannot write the column cache in {self.root} ({e})")
        except CorruptCacheError as e:  # what was just written does not read back
            self._warn(f"the column cache does not read back what it wrote ({e})")
        return None

    def _fingerprint(self) -> str:
        return json.dumps(
            [FORMAT_VERSION]
            + [
                [leaf.key, str(leaf.kind), leaf.dtype.str, list(leaf.shape), leaf.compression]
                for leaf in self._plan.leaves
            ]
        )

    def _open(
        self, entry: Path, identity: dict, read: ShardRead, keys: Sequence[str] | None = None
    ) -> ShardColumns:
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CorruptCacheError(f"{entry}: unreadable manifest ({e})") from None
        if manifest.get("version") != FORMAT_VERSION or manifest.get("identity") != identity:
            raise CorruptCacheError(f"{entry}: the manifest belongs to another shard")
        columns = manifest["columns"]
        try:
            with open(entry / DATA, "rb") as f:
                version = file_version(os.fstat(f.fileno()))
                data = mmap.mmap(f.fileno(), 0, flags=_MAP_FLAGS, prot=mmap.PROT_READ)
        except (OSError, ValueError) as e:
            raise CorruptCacheError(f"{entry / DATA}: {e}") from None
        if len(data) != manifest["bytes"]:
            raise CorruptCacheError(f"{entry / DATA}: {len(data)} bytes, not {manifest['bytes']}")
        lengths = _column(data, columns[_LENGTHS], entry, version)
        if lengths.shape != (read.shard_episodes,):
            raise CorruptCacheError(f"{entry}: {len(lengths)} episodes, not {read.shard_episodes}")
        wanted = self.needed if keys is None else keys
        arrays = {key: _column(data, columns[key], entry, version) for key in wanted}
        steps = int(lengths.sum())
        for key, values in arrays.items():
            leaf = self._leaves[key]
            rows = steps if leaf.in_steps else len(lengths)
            if values.shape != (rows, *leaf.shape) or values.dtype != leaf.dtype:
                raise CorruptCacheError(f"{entry}: {key} is {values.shape} {values.dtype}")
        return ShardColumns(read.path, lengths, np.cumsum(lengths) - lengths, arrays)

    def _build(
        self,
        group: Path,
        entry: Path,
        identity: dict,
        read: ShardRead,
        keys: Sequence[str] | None = None,
    ) -> ShardColumns | None:
        records = shards.read_records(
            read.path, self.dataset.file_format, within=self.dataset.real_path
        )
        if len(records) != read.shard_episodes:
            return None  # the reader reports the count as it always has
        try:
            decoded = EpisodeDecoder(self._plan).decode(records)
        except (ParseError, ImageDecodeError):
            return None  # the reader reports the episode as it always has
        _prune_once(self.root)
        work = _start_build(group, entry)
        try:
            decoded[NUM_STEPS] = decoded[NUM_STEPS].astype(np.int64)
            columns, offset = {}, 0
            with open(work / DATA, "wb") as f:
                for key, values in decoded.items():
                    values = np.ascontiguousarray(values)
                    f.write(b"\0" * (-offset % _ALIGN))
                    offset += -offset % _ALIGN
                    columns[key] = {
                        "offset": offset,
                        "dtype": values.dtype.str,
                        "shape": list(values.shape),
                        "crc32c": crc32c.crc32c(values),
                    }
                    f.write(values.data)
                    offset += values.nbytes
            manifest = {
                "version": FORMAT_VERSION,
                "shard": os.path.realpath(read.path),
                "identity": identity,
                "bytes": offset,
                "columns": columns,
            }
            _publish(work, entry, manifest)
        finally:
            _remove(work)
        return self._open(entry, identity, read, keys)

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{message}; reading without it (slower). Set ${CACHE_ENV} to a writable "
                f"directory, or to 'off'.",
                stacklevel=3,
            )


def decode_cached(plan: Plan, episodes: Sequence[CachedEpisode]) -> dict[str, np.ndarray]:
    """What :meth:`EpisodeDecoder.decode` gives for these episodes, from cached columns
    (consecutive episodes of one shard are sliced at once)."""
    runs: list[tuple[ShardColumns, int, int]] = []  # columns, first, end episode positions
    for episode in episodes:
        if runs and runs[-1][0] is episode.columns and runs[-1][2] == episode.position:
            runs[-1] = (episode.columns, runs[-1][1], episode.position + 1)
        else:
            runs.append((episode.columns, episode.position, episode.position + 1))
    out = {}
    for leaf in plan.leaves:
        parts = []
        for columns, first, end in runs:
            values = columns.arrays[leaf.key]
            if leaf.in_steps:
                lo = int(columns.starts[first])
                hi = int(columns.starts[end - 1] + columns.lengths[end - 1])
                parts.append(values[lo:hi])
            else:
                parts.append(values[first:end])
        if len(parts) == 1:
            out[leaf.key] = np.asarray(parts[0])
        else:
            rows = sum(len(part) for part in parts)
            joined = _empty((rows, *parts[0].shape[1:]), parts[0].dtype)
            out[leaf.key] = np.concatenate(parts, out=joined)
    out[NUM_STEPS] = np.concatenate([c.lengths[a:b] for c, a, b in runs])
    return out


def _empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``np.empty``, but large arrays come from their own anonymous memory map: NumPy asks
    the kernel for transparent huge pages for arrays of 4 MiB and more, and faulting those in
    (zeroing 2 MiB at a time, compacting memory first) made the chunk's columns take 3-5x
    longer to assemble than with ordinary pages on a loaded machine (docs/benchmarks.md)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < _MAPPED_BYTES or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty(shape, dtype)
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(memory, dtype).reshape(shape)  # unmapped when the array is freed


# A hidden build directory younger than this may be another process's build in progress.
_BUILD_SECONDS = 3600


def _in_progress(path: Path) -> bool:
    """Whether ``path`` is a recent hidden build directory (left alone; older ones were
    left by a process that died while building, and are removed)."""
    if not path.name.startswith(".tmp-"):
        return False
    try:
        return time.time() - path.stat().st_mtime < _BUILD_SECONDS
    except OSError:
        return True  # gone already


_PRUNED: set[Path] = set()


def _prune_once(root: Path) -> None:
    """Removes (once per process and cache directory, when an entry is built) the entries of
    shards that no longer exist, so the cache does not grow with every dataset ever read."""
    if root in _PRUNED:
        return
    _PRUNED.add(root)
    try:
        groups = list(root.iterdir())
    except OSError:
        return
    for group in groups:
        try:
            entries = list(group.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".tmp-"):
                continue  # another process's build in progress
            try:
                shard = json.loads((entry / MANIFEST).read_text())["shard"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # unreadable: removed when its own shard is read again
            if not os.path.exists(shard):
                _remove(entry)  # (its empty group directory stays: another build may use it)


def _identity(path: str, stat: os.stat_result) -> dict:
    with open(path, "rb") as f:
        head = f.read(_EDGE)
        f.seek(max(0, stat.st_size - _EDGE))
        tail = f.read(_EDGE)
    return {
        "bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "inode": stat.st_ino,
        "edges_crc32c": crc32c.crc32c(head + tail),
    }


def _digest(parts: list) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _column(
    data: mmap.mmap, column: Mapping, entry: Path, version: tuple | None = None
) -> np.ndarray:
    """One column of an entry's data file (a read-only view), its CRC32C checked (once per
    process and ``version`` of the file: :func:`check_crc`)."""
    dtype, shape = np.dtype(column["dtype"]), tuple(column["shape"])
    count = int(np.prod(shape, dtype=np.int64))
    try:
        values = np.frombuffer(data, dtype, count, column["offset"]).reshape(shape)
    except (TypeError, ValueError) as e:
        raise CorruptCacheError(f"{entry / DATA}: {e}") from None
    check_crc(values, column["crc32c"], entry / DATA, version, column["offset"])
    return values


# (file, its version, offset, bytes, CRC32C) of the column ranges this process has checked
_VERIFIED: set[tuple] = set()
_VERIFIED_MAX = 1 << 16


def file_version(stat: os.stat_result) -> tuple:
    """What changes when a file is replaced or rewritten: device, inode, size, mtime."""
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def check_crc(
    values: np.ndarray, expected: int, path: Path, version: tuple | None, offset: int = 0
) -> None:
    """Raises :class:`CorruptCacheError` unless ``values`` (bytes ``offset..`` of the file at
    ``path``) have the CRC32C ``expected``.

    A range already checked by this process in the same ``version`` of the file
    (:func:`file_version`: a replaced or rewritten file has another) is not read again, so
    the loaders of one process — a ``StepDataset``'s epochs, which make a loader each — check
    an entry once, as one loader always did over its epochs; every new process checks
    again. ``version=None``: always checked.
    """
    key = (str(path), version, offset, values.nbytes, expected)
    if version is not None and key in _VERIFIED:
        return
    if crc32c.crc32c(values) != expected:
        raise CorruptCacheError(f"{path}: CRC32C does not match the manifest")
    if version is not None:
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.clear()
        _VERIFIED.add(key)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _start_build(group: Path, entry: Path) -> Path:
    """A fresh work directory for building ``entry`` in ``group``, after removing the older
    versions there (entries other processes are still building are left alone)."""
    group.mkdir(parents=True, exist_ok=True)
    for stale in group.iterdir():
        if stale.name != entry.name and not _in_progress(stale):
            _remove(stale)
    work = group / f".tmp-{uuid.uuid4().hex}"
    work.mkdir()
    return work


def _publish(work: Path, entry: Path, manifest: dict) -> None:
    """Writes ``manifest`` last into the entry built in ``work`` and renames it into place
    (kept as it is when another process published the same entry first)."""
    (work / MANIFEST).write_text(json.dumps(manifest))
    try:
        work.rename(entry)
    except OSError:  # another process built it first
        if not entry.is_dir():
            raise
