"""Finding dataset directories under the roots, checking that a path lies inside them, naming
datasets, and the cheap fingerprint that tells whether a dataset changed since indexing."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from rlds_hub.storage import dataset_files, files

# A root or dataset path: a local directory, or an s3:// gs:// https:// prefix (a str).
Place = Path | str

# Dataset names in URLs: path segments of the directory under its root joined with ":"
# (TFDS's name:version style: "oxe_like:1.0.0", "team:cartpole").
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,254}$"
_NAME_RE = re.compile(NAME_PATTERN)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# Directories never descended into while scanning.
_SKIPPED_DIRS = {"__pycache__", "node_modules"}
MAX_SCAN_DEPTH = 8


class PathNotAllowed(ValueError):
    """A path outside the configured roots (or that escapes them through a link)."""


def inside_roots(path: str | os.PathLike, roots: Sequence[Place]) -> tuple[Place, Place]:
    """``(resolved path, its root)`` if ``path`` lies under one of ``roots`` once every
    symbolic link is resolved.

    Raises:
      PathNotAllowed: a ``..`` component, a relative path matching no root, or a path
        (or link target) outside every root.
    """
    text = os.fspath(path)
    if not text or "\x00" in text:
        raise PathNotAllowed("the path is empty or holds a NUL character")
    if ".." in Path(text).parts:
        raise PathNotAllowed(f"{text}: paths may not contain '..' components")
    if not roots:
        raise PathNotAllowed("no dataset roots are configured")
    remote = [r for r in roots if isinstance(r, str)]
    local = [r for r in roots if not isinstance(r, str)]
    if files.is_remote(text) or not os.path.isabs(text):
        for root in remote:
            url = text.rstrip("/") if files.is_remote(text) else f"{root}/{text.strip('/')}"
            if url == root or url.startswith(root + "/"):
                return url, root
    candidates = [Path(text)] if os.path.isabs(text) else [root / text for root in local]
    for candidate in [] if files.is_remote(text) else candidates:
        resolved = Path(os.path.realpath(candidate))
        for root in local:
            if resolved == root or root in resolved.parents:
                return resolved, root
    raise PathNotAllowed(
        f"{text} is not inside the dataset roots ({', '.join(map(str, roots))}) once links "
        "are resolved; move or link the dataset under a root, or start the server with that "
        "root"
    )


def find_datasets(root: Place) -> Iterator[Place]:
    """Dataset directories (holding ``dataset_info.json``) under ``root``, resolved, in
    sorted order. Hidden directories are skipped; links are followed only while they stay
    inside ``root``; a dataset directory is not searched further. A remote root is walked
    through its listings (:func:`find_remote_datasets`)."""
    if isinstance(root, str):
        yield from find_remote_datasets(root)
        return
    seen: set[Path] = set()

    def walk(directory: Path, depth: int) -> Iterator[Path]:
        real = Path(os.path.realpath(directory))
        if real in seen or not (real == root or root in real.parents):
            return
        seen.add(real)
        if (real / dataset_files.DATASET_INFO).is_file():
            yield real
            return
        if depth >= MAX_SCAN_DEPTH:
            return
        try:
            names = sorted(os.listdir(real))
        except OSError:
            return
        for name in names:
            if name.startswith(".") or name in _SKIPPED_DIRS:
                continue
            child = real / name
            if child.is_dir():
                yield from walk(child, depth + 1)

    yield from walk(root, 0)


def find_remote_datasets(root: str, depth: int = 0) -> Iterator[str]:
    """:func:`find_datasets` of a remote prefix: one listing per prefix walked (a prefix
    holding ``dataset_info.json`` is a dataset and is not searched further)."""
    try:
        names = files.listdir(root)
    except FileNotFoundError:
        return
    if dataset_files.DATASET_INFO in names:
        yield root
        return
    if depth >= MAX_SCAN_DEPTH:
        return
    for name in names:
        if name.startswith(".") or name in _SKIPPED_DIRS:
            continue
        child = f"{root}/{name}"
        if files.isdir(child):
            yield from find_remote_datasets(child, depth + 1)


def default_name(path: Place, root: Place) -> str:
    """The dataset's name: its directory relative to the root, segments joined with ":"."""
    if isinstance(path, str):
        relative = tuple(p for p in path[len(str(root)) :].split("/") if p) or (
            path.rsplit("/", 1)[-1],
        )
    else:
        relative = path.relative_to(root).parts or (path.name,)
    parts = [_UNSAFE.sub("_", part).strip("_") or "_" for part in relative]
    name = ":".join(parts)
    if not name[0].isalnum():
        name = "d" + name
    return name[:255]


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(
            f"dataset name {name!r} is not valid: use letters, digits and _ . : - (at most "
            "255, starting with a letter or digit)"
        )
    return name


# The files whose version tells whether a remote dataset changed (shards are listed in
# dataset_info.json; rewriting one rewrites it, or checksums.json).
_REMOTE_FINGERPRINT = (
    dataset_files.DATASET_INFO,
    dataset_files.FEATURES,
    dataset_files.METADATA,
    dataset_files.EPISODE_INDEX,
    dataset_files.CHECKSUMS,
    dataset_files.STATISTICS,
)


def remote_fingerprint(url: str) -> str:
    """:func:`fingerprint` of a remote dataset: size and ETag of its metadata files."""
    from rlds_hub.storage import remote

    digest = hashlib.sha256()
    store = remote.store(url)
    for name in _REMOTE_FINGERPRINT:
        try:
            stat = store.stat(f"{url}/{name}")
            digest.update(f"{name}\0{stat.size}\0{stat.etag}\n".encode())
        except FileNotFoundError:
            digest.update(f"{name}\0absent\n".encode())
        except remote.RemoteError as e:
            return f"unreadable:{type(e).__name__}"
    return digest.hexdigest()


def fingerprint(path: Place) -> str:
    """A digest of the names, sizes and modification times of the dataset's files (hidden
    ones aside): equal fingerprints mean nothing was written since (one ``stat`` per file).
    A file that is a link counts as changed, so swapping a file for a link (whatever its
    target's size and time) is always re-checked. Remote: :func:`remote_fingerprint`."""
    if isinstance(path, str):
        return remote_fingerprint(path)
    digest = hashlib.sha256()
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        return f"unreadable:{e.errno}"
    for name in names:
        if name.startswith("."):  # the writer's lock and temporary files, an index file
            continue
        try:
            info = os.lstat(path / name)
            mark = ""
            if stat.S_ISLNK(info.st_mode):
                mark = "\0link"
                info = os.stat(path / name)
        except OSError:
            digest.update(f"{name}\0unreadable\n".encode())
            continue
        digest.update(f"{name}\0{info.st_size}\0{info.st_mtime_ns}{mark}\n".encode())
    return digest.hexdigest()
