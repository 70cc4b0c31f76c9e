"""Publishing a finished directory at an output path, and recovering an interrupted publish.

A job builds its output in a hidden staging directory next to the output
(``<parent>/.tmp-<name>-<id>``, with an ``.owner`` file naming its process). Publishing it
is a short sequence of renames, each atomic, made under an exclusive ``flock`` of the parent
directory (so a recovery never runs while a live process is between two of them):

1. ``.tmp-<name>-<id>`` -> ``.tmp-<name>-<id>-ready``: the result is complete (its working
   files, named in its owner file, are removed next);
2. with ``overwrite``, the old output -> ``.tmp-<name>-<id>-aside``; it is compared with
   what it held when the job started, and put back if anything else appeared in it;
3. ``-aside`` -> ``.tmp-<name>-<id>-old``: the old output was checked and may go;
4. ``-ready`` -> the output (a rename replaces nothing but a missing or empty directory);
5. ``-old`` is deleted.

:func:`recover` (run by every job before it writes an output, and by ``rlds-hub validate
--repair``) finishes or undoes what a process killed between two steps left: a ``-ready``
result is renamed to a missing output, an unchecked ``-aside`` copy is put back, an ``-old``
copy is deleted only once a complete dataset is at the output. Nothing complete is ever
deleted: what cannot go to the output is renamed to a visible ``<name>-result-<id>`` (a
finished result) or ``<name>-previous-<id>`` (a replaced dataset), and said so.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

from rlds_hub.storage import dataset_files

OWNER = ".owner"
# Marker of a Parquet export (the export job's output is not an RLDS dataset).
EXPORT_MARKER = "export.json"
READY, ASIDE, OLD = "ready", "aside", "old"
_ENTRY_RE = re.compile(r"^\.tmp-(?P<name>.+)-(?P<id>[0-9a-f]{12})(?:-(?P<state>ready|aside|old))?$")
# The old copy left by rlds_hub <= 0.x's overwrite (renamed aside, never checked again).
_LEGACY_OLD_RE = re.compile(r"^\.tmp-(?P<name>.+)-old-(?P<id>[0-9a-f]{8})$")
_REFUSED = (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR)
log = logging.getLogger("rlds_hub")


class OutputConflictError(dataset_files.DatasetError):
    """Something appeared at the output while the job ran; the finished result is ``kept``."""

    def __init__(self, message: str, kept: Path):
        super().__init__(message)
        self.kept = kept


def holds_dataset(path: Path) -> bool:
    """Whether ``path`` is a directory with a dataset (or a Parquet export) in it."""
    return (path / dataset_files.DATASET_INFO).is_file() or (path / EXPORT_MARKER).is_file()


def contents(path: Path) -> frozenset[str]:
    """The relative paths of everything under ``path`` (what an overwrite may replace)."""
    found = set()
    for root, dirs, files in os.walk(path):
        base = os.path.relpath(root, path)
        for name in dirs + files:
            found.add(os.path.normpath(os.path.join(base, name)))
    return frozenset(found)


@contextlib.contextmanager
def parent_lock(output: Path) -> Iterator[None]:
    """An exclusive ``flock`` of the output's parent directory (a no-op where the file
    system has none)."""
    try:
        fd = os.open(output.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # a parent that cannot be opened for reading: no lock to take
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the lock


def _sibling(output: Path, job_id: str, state: str | None = None) -> Path:
    suffix = f"-{state}" if state else ""
    return output.parent / f"{dataset_files.TMP_PREFIX}{output.name}-{job_id}{suffix}"


def _visible(output: Path, kind: str, job_id: str) -> Path:
    return output.parent / f"{output.name}-{kind}-{job_id}"


def _rename_to_output(source: Path, output: Path) -> bool:
    """Renames ``source`` to ``output`` if the output is missing or an empty directory."""
    try:
        os.rename(source, output)
    except OSError as e:
        if e.errno in _REFUSED:
            return False
        raise
    return True


def _describe(output: Path) -> str:
    if output.is_symlink():
        return "a symbolic link"
    if not output.is_dir():
        return "a file" if output.exists() else "nothing"
    names = sorted(os.listdir(output))
    if not names:
        return "an empty directory"
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return f"a directory holding {shown}"


def publish(
    staging: Path, output: Path, *, overwrite: bool, expected: frozenset[str] | None
) -> Path:
    """Publishes the finished directory ``staging`` (``.tmp-<name>-<id>``) at ``output``
    (steps in the module docstring). With ``overwrite``, an output that holds exactly
    ``expected`` (its :func:`contents` when the job started) is replaced; an output that is
    missing or an empty directory is always taken.

    Raises:
      OutputConflictError: anything else is at the output; nothing was replaced and the
        finished result is in ``error.kept`` (a visible directory next to the output).
    """
    match = _ENTRY_RE.match(staging.name)
    if match is None or match["state"] or match["name"] != output.name:
        raise ValueError(f"{staging} is not a staging directory of {output}")
    job_id = match["id"]
    with parent_lock(output):
        ready = _sibling(output, job_id, READY)
        os.rename(staging, ready)
        dataset_files.fsync_path(output.parent)
        _remove_scratch(ready)
        if _rename_to_output(ready, output):
            dataset_files.fsync_path(output.parent)
            return output
        if not overwrite:
            _keep(
                ready, output, job_id, f"{output} ({_describe(output)}) appeared while the job ran"
            )
        aside = _sibling(output, job_id, ASIDE)
        os.rename(output, aside)
        what = _changed(aside, output, expected)
        if what:
            _put_back(aside, output, job_id)
            _keep(ready, output, job_id, what)
        old = _sibling(output, job_id, OLD)
        os.rename(aside, old)
        dataset_files.fsync_path(output.parent)
        if not _rename_to_output(ready, output):
            previous = _visible(output, "previous", job_id)
            os.rename(old, previous)
            _keep(
                ready,
                output,
                job_id,
                f"{output} appeared between two renames of the "
                f"commit; the dataset it replaced is in {previous}",
            )
        dataset_files.fsync_path(output.parent)
        shutil.rmtree(old, ignore_errors=True)
    return output


def _changed(aside: Path, output: Path, expected: frozenset[str] | None) -> str:
    """Why the output moved ``aside`` is not the dataset an overwrite may replace ("" if it
    is)."""
    if expected is None:
        return f"{output} ({_describe(aside)}) appeared while the job ran"
    if aside.is_symlink() or not aside.is_dir():
        return f"{output} was replaced by {_describe(aside)} while the job ran"
    foreign = sorted(contents(aside) - expected)
    if not foreign:
        return ""
    shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
    return (
        f"{shown} appeared in {output} while the job ran (an overwrite replaces only the "
        "dataset that was there)"
    )


def _put_back(aside: Path, output: Path, job_id: str) -> None:
    if not _rename_to_output(aside, output):  # something new at the output meanwhile
        previous = _visible(output, "previous", job_id)
        os.rename(aside, previous)
        log.warning(
            "rlds_hub: %s was kept in %s (the output path was taken meanwhile)", output, previous
        )


def _keep(ready: Path, output: Path, job_id: str, what: str) -> None:
    kept = _visible(output, "result", job_id)
    os.rename(ready, kept)
    dataset_files.fsync_path(output.parent)
    raise OutputConflictError(
        f"{what}; nothing was replaced. The finished result is in {kept}: check {output}, "
        "then move the result where you want it",
        kept,
    )


def write_owner(staging: Path, scratch: Iterable[str] = ()) -> None:
    """Writes ``staging``'s owner file: this process, and the ``scratch`` entries (working
    files, not part of the result) that publishing removes."""
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "scratch": list(scratch)}
    (staging / OWNER).write_text(json.dumps(owner))


def _remove_scratch(ready: Path) -> None:
    """Removes a finished result's working files (named by its owner file), then the owner
    file."""
    try:
        scratch = json.loads((ready / OWNER).read_text()).get("scratch", [])
    except (OSError, ValueError, AttributeError):
        scratch = []
    for name in scratch:
        if isinstance(name, str) and "/" not in name and name not in ("", ".", ".."):
            shutil.rmtree(ready / name, ignore_errors=True)
    (ready / OWNER).unlink(missing_ok=True)


def _owner_alive(directory: Path) -> bool | None:
    """Whether the process in ``directory``'s owner file lives (None: no owner file)."""
    try:
        owner = json.loads((directory / OWNER).read_text())
    except (OSError, ValueError):
        return None
    if owner.get("host") != socket.gethostname():
        return True  # another machine's job: not ours to judge
    pid = int(owner.get("pid", 0))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(output: str | os.PathLike) -> list[str]:
    """Finishes or undoes interrupted jobs' commits to ``output`` (module docstring) and
    removes the staging directories of dead jobs; returns what it did, one line each."""
    output = Path(output).expanduser().absolute()
    if not output.parent.is_dir():
        return []
    done: list[str] = []
    with parent_lock(output):
        groups: dict[str, dict[str, Path]] = {}
        legacy: list[Path] = []
        for entry in sorted(output.parent.iterdir()):
            match = _ENTRY_RE.match(entry.name)
            if match and match["name"] == output.name and entry.is_dir():
                groups.setdefault(match["id"], {})[match["state"] or "staging"] = entry
            elif (
                (legacy_match := _LEGACY_OLD_RE.match(entry.name))
                and legacy_match["name"] == output.name
                and entry.is_dir()
            ):
                legacy.append(entry)
        for job_id, states in sorted(groups.items()):
            _recover_job(output, job_id, states, done)
        for old in legacy:
            _recover_old(output, old, old.name.rsplit("-", 1)[1], done)
        if done:
            dataset_files.fsync_path(output.parent)
    return done


def _recover_job(output: Path, job_id: str, states: dict[str, Path], done: list[str]) -> None:
    staging = states.get("staging")
    if staging is not None:
        alive = _owner_alive(staging)
        if alive:
            return
        if alive is False:
            shutil.rmtree(staging, ignore_errors=True)
            done.append(f"removed {staging.name}, the unfinished work of a job that died")
        elif holds_dataset(staging) and READY not in states:
            states[READY] = staging  # a finished result of rlds_hub <= 0.x's commit
    if ASIDE in states:
        aside = states[ASIDE]
        if _rename_to_output(aside, output):
            done.append(
                f"put back the dataset at {output} that an interrupted overwrite had moved aside"
            )
        else:
            previous = _visible(output, "previous", job_id)
            os.rename(aside, previous)
            done.append(
                f"kept the dataset an interrupted overwrite had moved aside from "
                f"{output} in {previous} (the output is taken)"
            )
    if READY in states:
        ready = states[READY]
        _remove_scratch(ready)
        if _rename_to_output(ready, output):
            done.append(f"completed an interrupted commit: the finished result is now at {output}")
        else:
            kept = _visible(output, "result", job_id)
            os.rename(ready, kept)
            done.append(
                f"kept the finished result of an interrupted job in {kept} ({output} "
                "holds another dataset)"
            )
    if OLD in states:
        _recover_old(output, states[OLD], job_id, done)


def _recover_old(output: Path, old: Path, job_id: str, done: list[str]) -> None:
    """An old copy that an overwrite had checked: deleted once a dataset is at the output."""
    if holds_dataset(output):
        shutil.rmtree(old, ignore_errors=True)
        done.append(f"removed {old.name}, the copy that an overwrite of {output} replaced")
    elif _rename_to_output(old, output):
        done.append(
            f"put back the dataset at {output} that an interrupted overwrite had moved aside"
        )
    else:
        previous = _visible(output, "previous", job_id)
        os.rename(old, previous)
        done.append(f"kept the dataset an interrupted overwrite replaced in {previous}")
