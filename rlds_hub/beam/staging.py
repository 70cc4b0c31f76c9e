"""Where a job writes while it runs, and the atomic commit of its output.

A job writes everything into a staging directory next to the output
(``<parent>/.tmp-<name>-<id>``); workers write shards there, the driver adds the metadata
after the pipeline has finished, then renames the staging directory to the output in one
``rename``. A failed or killed job therefore never leaves a directory at the output path
(TFDS, which reads ``<output>/dataset_info.json``, sees either the complete dataset or
nothing); the staging directory it leaves behind is removed by the next job writing the same
output once its owner process is gone.

With ``--overwrite`` the old output is first renamed aside, the new one renamed into place,
then the old one deleted: the output path is, at every instant, the old dataset, nothing, or
the new dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path

from rlds_hub.storage import layout

PIECES = ".pieces"
RECEIPTS = ".receipts"
SOURCES = ".sources"
OWNER = ".owner"
# Marker of a Parquet export (the export job's output is not an RLDS dataset).
EXPORT_MARKER = "export.json"


class OutputExistsError(layout.DatasetError):
    """The output path already holds something the job must not replace."""


class Staging:
    """The staging directory of one job writing ``output`` (see the module docstring)."""

    def __init__(self, output: str | os.PathLike, *, overwrite: bool = False,
                 inputs: Iterable[str | os.PathLike] = ()):
        text = os.fspath(output)
        if "://" in text:
            raise layout.DatasetError(
                f"{text}: jobs write to a local or mounted file system (the commit is a POSIX "
                "rename); write locally, then copy the finished output"
            )
        self.output = Path(text).expanduser().absolute()
        self.overwrite = overwrite
        _check_inputs(self.output, inputs)
        _check_output(self.output, overwrite)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(self.output)
        self.path = self.output.parent / f"{layout.TMP_PREFIX}{self.output.name}-{uuid.uuid4().hex[:12]}"
        self.path.mkdir()
        (self.path / OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        for name in (PIECES, RECEIPTS, SOURCES):
            (self.path / name).mkdir()

    @property
    def pieces(self) -> Path:
        return self.path / PIECES

    @property
    def receipts(self) -> Path:
        return self.path / RECEIPTS

    @property
    def sources(self) -> Path:
        return self.path / SOURCES

    def commit(self) -> Path:
        """Removes the job's working files and renames the staging directory to the output."""
        for name in (PIECES, RECEIPTS, SOURCES):
            shutil.rmtree(self.path / name, ignore_errors=True)
        (self.path / OWNER).unlink(missing_ok=True)
        for entry in self.path.iterdir():
            if entry.is_file():
                layout.fsync_path(entry)
        layout.fsync_path(self.path)
        old = None
        if self.output.exists():
            if not self.overwrite:  # appeared while the job ran
                raise OutputExistsError(f"{self.output} appeared while the job ran; nothing "
                                        f"was replaced (the result is in {self.path})")
            if any(self.output.iterdir()):
                old = self.output.parent / f"{layout.TMP_PREFIX}{self.output.name}-old-{uuid.uuid4().hex[:8]}"
                os.rename(self.output, old)
            else:
                self.output.rmdir()
        os.rename(self.path, self.output)
        layout.fsync_path(self.output.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.output

    def abort(self) -> None:
        """Deletes the staging directory (the output path is untouched)."""
        shutil.rmtree(self.path, ignore_errors=True)


def _check_output(output: Path, overwrite: bool) -> None:
    if not output.exists():
        return
    if not output.is_dir():
        raise OutputExistsError(f"{output} exists and is not a directory; choose another output")
    names = [p.name for p in output.iterdir()]
    if not names:
        return
    replaceable = layout.DATASET_INFO in names or EXPORT_MARKER in names
    if replaceable and overwrite:
        return
    if replaceable:
        raise OutputExistsError(
            f"{output} already holds a dataset; pass --overwrite to replace it, or choose "
            "another output"
        )
    shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
    raise OutputExistsError(
        f"{output} is not empty and holds no dataset ({shown}); a job writes only into a new "
        "or empty directory, or replaces a dataset with --overwrite"
    )


def _check_inputs(output: Path, inputs: Iterable[str | os.PathLike]) -> None:
    real_output = output.resolve()
    for source in inputs:
        text = os.fspath(source)
        if "://" in text:
            continue
        real = Path(text).expanduser().resolve()
        if real == real_output or real_output in real.parents or real in real_output.parents:
            raise layout.DatasetError(
                f"the output {output} overlaps the input {text}; write to a separate directory"
            )


def _remove_stale(output: Path) -> None:
    """Deletes staging directories of earlier jobs for ``output`` whose process is gone."""
    prefix = f"{layout.TMP_PREFIX}{output.name}-"
    host = socket.gethostname()
    for entry in output.parent.iterdir():
        if not entry.name.startswith(prefix) or not entry.is_dir():
            continue
        owner_file = entry / OWNER
        try:
            owner = json.loads(owner_file.read_text())
        except (OSError, ValueError):
            owner = None
        if owner is None:
            if "-old-" in entry.name:  # an interrupted overwrite's old copy
                shutil.rmtree(entry, ignore_errors=True)
            continue
        if owner.get("host") == host and not _alive(int(owner.get("pid", 0))):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
