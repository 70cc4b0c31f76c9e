"""Names of the files in an RLDS dataset directory, and the file operations the writer needs.

A dataset directory is a plain TFDS dataset directory::

    dataset_info.json   TFDS: name, version, file format, splits and shard lengths
    features.json       TFDS: the feature description
    metadata.json       TFDS ``info.metadata``: rlds_hub's dataset-level metadata
    episodes.jsonl      rlds_hub: one line per episode (split, length, return, metadata)
    checksums.json      rlds_hub: per-shard sizes and CRC32C checksums (pipeline outputs)
    statistics.json     rlds_hub: per-feature statistics (``rlds-hub stats --save``)
    <name>-<split>.tfrecord-NNNNN   shards (or .array_record-NNNNN)

Files rlds_hub writes while working start with ``.tmp-``: they never match the TFDS shard
pattern (``*.tfrecord-*``), so a reader that globs shards sees only published ones.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from pathlib import Path

DATASET_INFO = "dataset_info.json"
FEATURES = "features.json"
METADATA = "metadata.json"
EPISODE_INDEX = "episodes.jsonl"
CHECKSUMS = "checksums.json"
STATISTICS = "statistics.json"
LOCK = ".rlds_hub.lock"
TMP_PREFIX = ".tmp-"
# Shard file names never depend on the number of shards, so shards are never renamed.
SHARD_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_INDEX}"
FILE_FORMATS = ("tfrecord", "array_record")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_SPLIT_RE = re.compile(r"^[A-Za-z0-9_]+$")


class DatasetError(ValueError):
    """A dataset directory that cannot be read or written as asked."""


_SHARD_RE = re.compile(r"\.(tfrecord|array_record|riegeli)-\d{5,}(-of-\d{5,})?$")


def is_shard_name(name: str) -> bool:
    """True for names matching TFDS's shard pattern (``*.tfrecord-00003``, ``...-of-...``)."""
    return not name.startswith(TMP_PREFIX) and bool(_SHARD_RE.search(name))


def missing_info_message(path: str, names: list[str], nested: list[str] = ()) -> str:
    """What to say about a directory without ``dataset_info.json``: what is there instead,
    and how to recover."""
    shard_files = [n for n in names if is_shard_name(n)]
    ours = [n for n in (FEATURES, METADATA, EPISODE_INDEX) if n in names]
    if "://" in path and (shard_files or ours):  # an object store: no rebuild in place
        return (
            f"{path} is not a complete dataset: it holds {len(names)} object(s) but no "
            f"{DATASET_INFO}, which is written last when a dataset is uploaded or committed, so "
            "this is an unfinished copy or job. `rlds-hub validate --repair "
            f"{path}` finishes or removes an interrupted rlds_hub job's commit; otherwise copy "
            "the dataset again"
        )
    if shard_files or ours:
        found = []
        if shard_files:
            found.append(
                f"{len(shard_files)} shard file(s) ({', '.join(shard_files[:3])}"
                f"{', ...' if len(shard_files) > 3 else ''})"
            )
        found += ours
        return (
            f"{path} is a damaged dataset: {DATASET_INFO} (the list of its splits and shards) "
            f"is missing, but {', '.join(found)} are there. Nothing was changed. Rebuild "
            f"{DATASET_INFO} from the shards with `rlds-hub validate --repair {path}`"
            + (
                ""
                if FEATURES in names
                else f" (that also needs {FEATURES}, or {METADATA} from rlds_hub)"
            )
            + ", or restore it from a copy."
        )
    message = f"{path} is not an RLDS dataset directory (it has no {DATASET_INFO})"
    if nested:
        return message + "; datasets inside it: " + ", ".join(sorted(nested)[:5])
    visible = [n for n in names if not n.startswith(".")]
    return message + (
        f"; it holds {', '.join(visible[:5])}{', ...' if len(visible) > 5 else ''}: pass the "
        f"directory that holds {DATASET_INFO}"
        if visible
        else "; it is empty"
    )


def shard_filename(name: str, split: str, file_format: str, index: int) -> str:
    """The file name of shard ``index`` of ``split`` (matches ``SHARD_TEMPLATE``)."""
    return f"{name}-{split}.{file_format}-{index:05d}"


def dataset_name_from_path(path: Path) -> str:
    """A TFDS-valid dataset name (snake_case) derived from a directory name."""
    name = re.sub(r"[^a-z0-9_]+", "_", path.name.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"rlds_{name}" if name else "rlds_dataset"
    return name


def check_dataset_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise DatasetError(
            f"dataset name {name!r} is not valid for TFDS: use lower-case letters, digits and "
            "underscores, starting with a letter"
        )


def check_split_name(split: str) -> None:
    if not _SPLIT_RE.match(split):
        raise DatasetError(f"split name {split!r} is not valid: use letters, digits, underscores")


def check_file_format(file_format: str) -> None:
    if file_format not in FILE_FORMATS:
        raise DatasetError(f"file_format must be one of {FILE_FORMATS}, got {file_format!r}")


def prepare_directory(path: str | os.PathLike) -> Path:
    """Creates ``path`` if needed; a clear error if it cannot hold a dataset."""
    if "://" in os.fspath(path):
        raise DatasetError(
            f"{path}: recording writes to a local directory (crash safety relies on POSIX "
            "rename and flock); record locally, then copy the finished dataset to the bucket "
            "(a job does it safely: rlds-hub reshard --input LOCAL --output URL)"
        )
    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise DatasetError(f"{path} exists and is not a directory; choose a directory path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot create the dataset directory {path}: {e.strerror}") from e
    if not os.access(path, os.W_OK | os.X_OK):
        raise DatasetError(f"the dataset directory {path} is not writable by this user")
    return path


def write_file(path: Path, data: bytes, *, sync: bool) -> None:
    """Writes ``data`` to ``path`` (created or truncated)."""
    write_fd(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), data, sync=sync)


def write_fd(fd: int, data: bytes, *, sync: bool) -> None:
    """Writes ``data`` to the open file ``fd`` (fsynced if ``sync``), then closes it."""
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, sync: bool) -> None:
    """Replaces ``path`` with ``data`` atomically: readers see the old or the new file."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    write_file(tmp, data, sync=sync)
    os.replace(tmp, path)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (its entries) by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class DatasetLock:
    """An exclusive ``flock`` on the dataset directory, released when the process dies."""

    def __init__(self, directory: Path):
        self._path = directory / LOCK
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                holder = self._path.read_text().strip() or "another process"
                raise DatasetError(
                    f"{self._path.parent} is being written by {holder}; one writer at a time "
                    "(record into another directory, or wait for it to finish)"
                ) from e
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
