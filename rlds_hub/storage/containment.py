"""Keeping a dataset's reads inside its directory.

A dataset directory may come from anyone (a download, a colleague's export, a directory a
service indexes), so nothing in it may make a reader open a file elsewhere:

* shard templates (``filepathTemplate`` in ``dataset_info.json``) are relative paths
  without ``..``;
* every local file a dataset opens is resolved (links followed) and must lie inside the
  dataset's resolved directory, checked again each time it is opened;
* only regular files are read (never a device, FIFO or socket), and never more than their
  size.

Errors say which file of the dataset is refused, never whether a path outside exists.
"""

from __future__ import annotations

import os
import stat
from pathlib import PurePosixPath
from typing import BinaryIO

from rlds_hub.storage.dataset_files import DatasetError

_PROC_FD = "/proc/self/fd"


class OutsideDataset(DatasetError):
    """A file of a dataset that resolves to a place outside the dataset's directory."""


class NotRegularFile(DatasetError):
    """A file of a dataset that is a device, FIFO, socket or directory."""


def check_template(template: str, where: str) -> None:
    """Refuses a shard ``filepathTemplate`` that is absolute or holds ``..``.

    Args:
      where: names the field in messages (e.g. "…/dataset_info.json: splits[0] (train)").

    Raises:
      DatasetError: naming the field, what is wrong and how to fix it.
    """
    parts = PurePosixPath(template.replace("\\", "/")).parts
    problem = None
    if "\x00" in template:
        problem = "holds a NUL character"
    elif template.startswith(("/", "\\")) or os.path.isabs(template) or "://" in template:
        problem = "is an absolute path"
    elif ".." in parts:
        problem = "holds a '..' component"
    if problem:
        raise DatasetError(
            f"{where}: filepathTemplate {template!r} {problem}; shards must lie inside the "
            "dataset directory, so the template must be a relative path without '..' (TFDS "
            "writes '{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}'): fix dataset_info.json"
        )


def real_directory(path: str | os.PathLike) -> str:
    """The resolved (links followed, absolute) path of a local directory."""
    return os.path.realpath(os.fspath(path))


def is_inside(real: str, directory: str) -> bool:
    """True if the resolved path ``real`` is ``directory`` or lies below it."""
    return real == directory or real.startswith(directory.rstrip(os.sep) + os.sep)


def confine(path: str | os.PathLike, within: str) -> str:
    """The resolved path of ``path``, a file of the dataset whose resolved directory is
    ``within``.

    Raises:
      OutsideDataset: ``path`` (or a link on its way) leads outside ``within`` (whether or
        not the place it leads to exists).
    """
    real = os.path.realpath(os.fspath(path))
    if real == within or not is_inside(real, within):
        raise OutsideDataset(
            f"{os.fspath(path)} leads outside the dataset directory {within} (through '..' "
            "or a link); rlds_hub reads only files inside a dataset's directory: copy the "
            "file into it instead of linking it"
        )
    return real


def check_entry(path: str | os.PathLike, within: str) -> None:
    """Checks, without opening it, that a listed file of a dataset is inside ``within`` and,
    if it exists, a regular file (one ``lstat`` unless it is a link)."""
    text = os.fspath(path)
    try:
        info = os.lstat(text)
    except FileNotFoundError:
        confine(text, within)  # a missing file is reported when it is read
        return
    if stat.S_ISLNK(info.st_mode):
        real = confine(text, within)
        try:
            info = os.stat(real)
        except FileNotFoundError:
            return
    elif os.path.dirname(os.path.abspath(text)) != within:
        confine(text, within)  # in a subdirectory: a link may be on its way
    _check_regular(text, info.st_mode)


def open_regular(path: str | os.PathLike, within: str | None = None) -> BinaryIO:
    """Opens a local file for reading if it is a regular file (inside ``within``, a resolved
    directory, if given), without blocking on a FIFO.

    Raises:
      FileNotFoundError: it does not exist (inside ``within``).
      OutsideDataset: it leads outside ``within``.
      NotRegularFile: it is a device, FIFO, socket or directory.
    """
    text = os.fspath(path)
    target = text if within is None else confine(text, within)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if within is not None:
        flags |= getattr(os, "O_NOFOLLOW", 0)  # the resolved path holds no link
    try:
        fd = os.open(target, flags)
    except OSError as e:
        if e.errno == getattr(os, "ELOOP", None) and within is not None:
            confine(text, within)  # a link appeared since: say where it leads
        raise
    try:
        _check_regular(text, os.fstat(fd).st_mode)
        if within is not None:
            _check_opened(fd, text, within)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_opened(fd: int, path: str, within: str) -> None:
    """Checks where the opened file really is (Linux: /proc/self/fd), so a directory swapped
    for a link between resolving and opening is caught too."""
    try:
        real = os.readlink(os.path.join(_PROC_FD, str(fd)))
    except OSError:
        return  # no /proc: the resolved path was checked
    if real == within or not is_inside(real, within):
        confine(path, within)
        raise OutsideDataset(f"{path} leads outside the dataset directory {within}")


def _check_regular(path: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = (
        "a directory"
        if stat.S_ISDIR(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    raise NotRegularFile(
        f"{path} is {kind}, not a regular file; a dataset's files must be regular files "
        "(replace it with the real file)"
    )
