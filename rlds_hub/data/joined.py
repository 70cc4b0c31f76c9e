"""Split-level columns: the cached columns of every shard a loader reads, joined once.

An epoch of transitions over state-only data is mostly copying (docs/benchmarks.md,
"Reading"): the shards' cached columns (:mod:`rlds_hub.data.columns`) were joined into one
array per field every epoch, and the transition indices rebuilt. Here both are made once and
kept in the column cache: the step columns of all the shards, in the selection's shard
order, one file per column, and the one-step transitions of those episodes in storage order
(``source`` step, ``reward``, ``discount``, as :func:`rlds_hub.data.indices.
transition_indices` makes them, the dataset's ``rlds`` layout). A loader then gathers its
batches straight from these memory maps (``rlds_hub.data.chunks``), with no copy per epoch.

- Where: ``<column cache>/joined/<hash of the shards' real paths and the leaves>/<hash of
  the shards' identities>/``: ``manifest.json`` (each column's file, dtype, shape, CRC32C,
  the shards and their episode counts) and ``<n>.bin`` per column. Built from the shards'
  entries in a hidden directory and renamed into place (complete or absent); stale ones
  (a shard rewritten) are removed when it is rebuilt, and the first build in a process
  removes those whose shards no longer exist.
- Only for state: image leaves are never joined (frames would be stored twice), and a
  selection with a shard that is not cached (small, or an episode that does not decode)
  reads the shards' own entries as before.
- Opening an entry checks the manifest against the shards' identities (size, mtime, inode,
  CRC32C of the first and last 64 KiB), every time, and the CRC32C of every column read,
  once per process and version of the column's file (``columns.check_crc``); a corrupt or
  truncated entry is removed and rebuilt.
"""

from __future__ import annotations

import dataclasses
import json
import mmap
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import crc32c
import numpy as np

from rlds_hub.data import indices
from rlds_hub.data.columns import (
    _MAP_FLAGS,
    ColumnCache,
    CorruptCacheError,
    ShardColumns,
    _digest,
    _identity,
    _publish,
    _remove,
    _start_build,
    check_crc,
    file_version,
)
from rlds_hub.format.plan import LeafKind
from rlds_hub.storage.selection import ShardRead

JOINED = "joined"
MANIFEST = "manifest.json"
VERSION = 1
LENGTHS = "#lengths"
# the one-step transitions, in storage order
SOURCE, REWARD, DISCOUNT = "#transitions/source", "#transitions/reward", "#transitions/discount"
_REWARD, _DISCOUNT, _TERMINAL = "steps/reward", "steps/discount", "steps/is_terminal"


@dataclasses.dataclass(frozen=True)
class JoinedColumns:
    """The step columns of some shards, joined: ``arrays[key]`` (read-only memory maps, the
    shards' steps one after the other), ``lengths`` of every episode, ``shards`` (each
    shard's :class:`ShardColumns`, views of these), and the one-step ``transitions``
    (``source``, ``reward``, ``discount``, in storage order; None without a reward or
    is_terminal field) with ``transition_starts``, each episode's first transition."""

    lengths: np.ndarray
    arrays: Mapping[str, np.ndarray]
    shards: Mapping[str, ShardColumns]
    transitions: Mapping[str, np.ndarray] | None
    transition_starts: np.ndarray


def joined_columns(cache: ColumnCache, reads: Sequence[ShardRead]) -> JoinedColumns | None:
    """The joined columns of the shards ``reads`` read (opened, or built from the shards'
    entries); None when the cache is off, the loader reads images or strings, or a shard is
    not cached."""
    if not cache.enabled or cache.root is None:
        return None
    leaves = [leaf for leaf in cache.entry_plan.leaves if leaf.in_steps]
    if any(leaf.kind == LeafKind.IMAGE for leaf in leaves) or not reads:
        return None
    first: dict[str, ShardRead] = {}
    for read in reads:
        first.setdefault(read.path, read)
    shard_reads = list(first.values())
    try:
        reals = [os.path.realpath(read.path) for read in shard_reads]
        stats = [os.stat(real) for real in reals]
        if any(stat.st_size < cache.min_shard_bytes for stat in stats):
            return None
        identities = [_identity(real, stat) for real, stat in zip(reals, stats, strict=True)]
    except OSError:
        return None  # the reader reports the shard as it always has
    keys = [leaf.key for leaf in leaves]
    group = cache.root / JOINED / _digest([reals, cache.entry_fingerprint()])
    entry = group / _digest([identities])
    needed = [key for key in cache.needed if key in keys]
    if entry.is_dir():
        try:
            return _open(entry, identities, shard_reads, needed, cache)
        except (CorruptCacheError, OSError, ValueError, KeyError, TypeError):
            _remove(entry)  # corrupt or from another version: rebuilt
    try:
        return _build(cache, group, entry, identities, reals, shard_reads, keys, needed)
    except OSError as e:
        cache.warn(f"cannot write the column cache in {cache.root} ({e})")
    except CorruptCacheError as e:
        cache.warn(f"the column cache does not read back what it wrote ({e})")
    return None


def _build(
    cache: ColumnCache,
    group: Path,
    entry: Path,
    identities: list[dict],
    reals: list[str],
    reads: list[ShardRead],
    keys: list[str],
    needed: list[str],
) -> JoinedColumns | None:
    parts = []
    for read in reads:
        columns = cache.shard_columns(read, keys)
        if columns is None:
            return None  # read shard by shard, as without joining
        parts.append(columns)
    _prune_once(cache.root / JOINED)
    work = _start_build(group, entry)
    try:
        lengths = np.concatenate([part.lengths for part in parts]).astype(np.int64)
        columns = {LENGTHS: _write(work, 0, [lengths])}
        for key in keys:
            columns[key] = _write(work, len(columns), [part.arrays[key] for part in parts])
        for key, values in _transitions(lengths, parts).items():
            columns[key] = _write(work, len(columns), [values])
        manifest = {
            "version": VERSION,
            "shards": reals,
            "episodes": [read.shard_episodes for read in reads],
            "identities": identities,
            "columns": columns,
        }
        _publish(work, entry, manifest)
    finally:
        _remove(work)
    return _open(entry, identities, reads, needed, cache)


def _transitions(lengths: np.ndarray, parts: list[ShardColumns]) -> dict[str, np.ndarray]:
    """The one-step transitions of the joined episodes (``rlds`` layout), in step order."""
    if _REWARD not in parts[0].arrays or _TERMINAL not in parts[0].arrays:
        return {}
    reward = np.concatenate([part.arrays[_REWARD] for part in parts])
    terminal = np.concatenate([part.arrays[_TERMINAL] for part in parts])
    if _DISCOUNT in parts[0].arrays:
        discount = np.concatenate([part.arrays[_DISCOUNT] for part in parts])
    else:  # derived as the loaders derive it
        discount = indices.missing_discounts(lengths, terminal)
    found = indices.transition_indices(lengths, reward, discount, terminal)
    return {SOURCE: found["source"], REWARD: found["reward"], DISCOUNT: found["discount"]}


def _write(work: Path, number: int, parts: list[np.ndarray]) -> dict:
    """Writes ``parts`` joined as column ``number``'s file; its manifest record."""
    name, crc = f"{number}.bin", 0
    with open(work / name, "wb") as f:
        for part in parts:
            part = np.ascontiguousarray(part)
            crc = crc32c.crc32c(part, crc)
            f.write(part.data)
    shape = [sum(len(part) for part in parts), *parts[0].shape[1:]]
    return {"file": name, "dtype": parts[0].dtype.str, "shape": shape, "crc32c": crc}


def _open(
    entry: Path,
    identities: list[dict],
    reads: list[ShardRead],
    needed: list[str],
    cache: ColumnCache,
) -> JoinedColumns:
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CorruptCacheError(f"{entry}: unreadable manifest ({e})") from None
    if manifest.get("version") != VERSION or manifest.get("identities") != identities:
        raise CorruptCacheError(f"{entry}: the manifest belongs to other shards")
    if manifest["episodes"] != [read.shard_episodes for read in reads]:
        raise CorruptCacheError(f"{entry}: the shards' episode counts differ")
    columns = manifest["columns"]
    mapped: list[tuple[np.ndarray, Mapping, Path, tuple]] = []  # checked before returning
    lengths = _column(entry, columns[LENGTHS], mapped)
    if lengths.shape != (sum(manifest["episodes"]),):
        raise CorruptCacheError(f"{entry}: {len(lengths)} episodes")
    steps = int(lengths.sum())
    arrays = {key: _column(entry, columns[key], mapped) for key in needed}
    leaves = {leaf.key: leaf for leaf in cache.entry_plan.leaves}
    for key, values in arrays.items():
        if values.shape != (steps, *leaves[key].shape) or values.dtype != leaves[key].dtype:
            raise CorruptCacheError(f"{entry}: {key} is {values.shape} {values.dtype}")
    transitions = None
    if SOURCE in columns:
        transitions = {
            name: _column(entry, columns[key], mapped)
            for name, key in (("source", SOURCE), ("reward", REWARD), ("discount", DISCOUNT))
        }
        count = int(np.maximum(lengths - 1, 0).sum())
        if any(len(values) != count for values in transitions.values()):
            raise CorruptCacheError(f"{entry}: the transitions are not {count}")
    _check_all(mapped)
    counts = np.maximum(lengths - 1, 0)
    shards: dict[str, ShardColumns] = {}
    out = JoinedColumns(lengths, arrays, shards, transitions, np.cumsum(counts) - counts)
    starts = np.cumsum(lengths) - lengths
    episode = 0
    for read in reads:
        shard_lengths = lengths[episode : episode + read.shard_episodes]
        first = int(starts[episode]) if read.shard_episodes else 0
        rows = int(shard_lengths.sum())
        shards[read.path] = ShardColumns(
            read.path,
            shard_lengths,
            np.cumsum(shard_lengths) - shard_lengths,
            {key: values[first : first + rows] for key, values in arrays.items()},
            base=out,
            base_episode=episode,
        )
        episode += read.shard_episodes
    return out


def _check_all(mapped: Sequence[tuple[np.ndarray, Mapping, Path, tuple]]) -> None:
    """The CRC32C of every mapped column (:func:`check_crc`), before any value is used."""
    for values, column, path, version in mapped:
        check_crc(values, column["crc32c"], path, version)


def _column(
    entry: Path, column: Mapping, mapped: list[tuple[np.ndarray, Mapping, Path, tuple]]
) -> np.ndarray:
    """One column's file, memory-mapped read-only, its size checked; added to ``mapped``
    for :func:`_check_all` to check its CRC32C."""
    dtype, shape = np.dtype(column["dtype"]), tuple(column["shape"])
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    path = entry / column["file"]
    try:
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            if stat.st_size != size:
                raise CorruptCacheError(f"{path}: not {size} bytes")
            if size == 0:
                return np.zeros(shape, dtype)
            data = mmap.mmap(f.fileno(), 0, flags=_MAP_FLAGS, prot=mmap.PROT_READ)
    except (OSError, ValueError) as e:
        raise CorruptCacheError(f"{path}: {e}") from None
    values = np.frombuffer(data, dtype).reshape(shape)
    mapped.append((values, column, path, file_version(stat)))
    return values


_PRUNED: set[Path] = set()


def _prune_once(root: Path) -> None:
    """Removes (once per process) the joined entries of shards that no longer exist."""
    if root in _PRUNED:
        return
    _PRUNED.add(root)
    for entry in root.glob("*/*"):
        if entry.name.startswith(".tmp-"):
            continue  # another process's build in progress
        try:
            shards = json.loads((entry / MANIFEST).read_text())["shards"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: removed when its own shards are read again
        if not all(os.path.exists(shard) for shard in shards):
            _remove(entry)
