"""Where a job writes while it runs, and the atomic commit of its output.

A job writes everything into a staging directory next to the output
(``<parent>/.tmp-<name>-<id>``); workers write shards there, the driver adds the metadata
after the pipeline has finished, then publishes it at the output with renames
(:mod:`rlds_hub.storage.publish`). A failed or killed job therefore never leaves a directory
at the output path (TFDS, which reads ``<output>/dataset_info.json``, sees either the
complete dataset or nothing); what it leaves behind is recovered or removed by the next job
writing the same output, or by ``rlds-hub validate --repair``.

An object-store output (``s3://``, ``gs://``) has no rename: the job writes into a local
staging directory (:func:`~rlds_hub.storage.remote_commit.local_staging`) and
:mod:`rlds_hub.storage.remote_commit` uploads it
under a staging prefix and publishes it with ``dataset_info.json`` written last.

With ``--overwrite`` the old output is renamed aside, checked against what it held when the
job started, the new one renamed into place, then the old one deleted: the output path is,
at every instant, the old dataset, nothing, or the new dataset, and a directory that holds
anything else is never replaced. When something else took the output while the job ran,
the finished result is kept in a visible ``<output>-result-<id>`` directory and the error
says so.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path

from rlds_hub.storage import dataset_files, publish
from rlds_hub.storage.publish import EXPORT_MARKER, OWNER, OutputConflictError
from rlds_hub.storage.remote_commit import RemoteOutput, filesystem, local_staging

__all__ = ["EXPORT_MARKER", "OWNER", "OutputConflictError", "OutputExistsError", "Staging"]
PIECES = ".pieces"
RECEIPTS = ".receipts"
SOURCES = ".sources"


class OutputExistsError(dataset_files.DatasetError):
    """The output path already holds something the job must not replace."""


class Staging:
    """The staging directory of one job writing ``output`` (see the module docstring)."""

    def __init__(
        self,
        output: str | os.PathLike,
        *,
        overwrite: bool = False,
        inputs: Iterable[str | os.PathLike] = (),
    ):
        text = os.fspath(output)
        self.remote: RemoteOutput | None = None
        if "://" in text:
            self._start_remote(text, overwrite, inputs)
            return
        self.output: Path | str = Path(text).expanduser().absolute()
        if self.output.is_symlink():  # the commit renames next to the directory it names
            self.output = self.output.resolve()
        self.overwrite = overwrite
        _check_inputs(self.output, inputs)
        if self.output.parent.is_dir():
            for line in publish.recover(self.output):
                print(f"rlds_hub: {line}", file=sys.stderr)
        _check_output(self.output, overwrite)
        # What an overwrite may replace: exactly what the output holds now.
        self.expected = publish.contents(self.output) if self.output.is_dir() else None
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.path = (
            self.output.parent
            / f"{dataset_files.TMP_PREFIX}{self.output.name}-{uuid.uuid4().hex[:12]}"
        )
        self.path.mkdir()
        publish.write_owner(self.path, scratch=(PIECES, RECEIPTS, SOURCES))
        for name in (PIECES, RECEIPTS, SOURCES):
            (self.path / name).mkdir()

    def _start_remote(self, url: str, overwrite: bool, inputs: Iterable[str | os.PathLike]) -> None:
        """An object-store output: the job writes into a local directory, committed by
        :class:`~rlds_hub.storage.remote_commit.RemoteOutput` (the module describes how)."""
        self.remote = RemoteOutput(url, overwrite=overwrite)
        self.output = self.remote.url
        self.overwrite = overwrite
        _check_remote_inputs(self.remote.url, inputs)
        job_id = uuid.uuid4().hex[:12]
        # Local work space, one folder per output URL; dead jobs' folders are removed here.
        local_dir = local_staging(self.remote.url)
        local_dir.mkdir(parents=True, exist_ok=True)
        for line in self.remote.start(job_id):
            print(f"rlds_hub: {line}", file=sys.stderr)
        self.expected = None
        self.path = local_dir / f"{dataset_files.TMP_PREFIX}{self.remote.name}-{job_id}"
        try:
            self.path.mkdir()
            publish.write_owner(self.path, scratch=(PIECES, RECEIPTS, SOURCES))
            for name in (PIECES, RECEIPTS, SOURCES):
                (self.path / name).mkdir()
        except BaseException:
            self.abort()
            raise

    @property
    def pieces(self) -> Path:
        return self.path / PIECES

    @property
    def receipts(self) -> Path:
        return self.path / RECEIPTS

    @property
    def sources(self) -> Path:
        return self.path / SOURCES

    def commit(self) -> Path | str:
        """Publishes the staging directory at the output, without the job's working files
        (:func:`rlds_hub.storage.publish.publish`; an object-store output:
        :meth:`~rlds_hub.storage.remote_commit.RemoteOutput.commit`, which returns its URL).

        Raises:
          OutputConflictError: something else took the output while the job ran; nothing was
            replaced, and the result is kept where the message says.
        """
        if self.remote is not None:
            try:
                return self.remote.commit(self.path)
            finally:
                shutil.rmtree(self.path, ignore_errors=True)
        for entry in self.path.iterdir():
            if entry.is_file() and entry.name != OWNER:
                dataset_files.fsync_path(entry)
        dataset_files.fsync_path(self.path)
        return publish.publish(
            self.path, self.output, overwrite=self.overwrite, expected=self.expected
        )

    def abort(self) -> None:
        """Deletes the staging directory (the output path is untouched)."""
        if self.remote is not None:
            self.remote.abort()
        if getattr(self, "path", None) is not None:
            shutil.rmtree(self.path, ignore_errors=True)


def _check_output(output: Path, overwrite: bool) -> None:
    for parent in output.parents:  # the nearest existing one must be a directory
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise OutputExistsError(
                    f"{parent} is a file, so nothing can be written under "
                    f"it; choose another output than {output}"
                )
            break
    if not output.exists():
        return
    if not output.is_dir():
        raise OutputExistsError(f"{output} exists and is not a directory; choose another output")
    names = [p.name for p in output.iterdir()]
    if not names:
        return
    replaceable = dataset_files.DATASET_INFO in names or EXPORT_MARKER in names
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


def _check_remote_inputs(url: str, inputs: Iterable[str | os.PathLike]) -> None:
    output = url.rstrip("/") + "/"
    for source in inputs:
        text = os.fspath(source)
        if "://" not in text:
            continue
        other = filesystem(text)[0].unstrip_protocol(filesystem(text)[1]).rstrip("/") + "/"
        if output.startswith(other) or other.startswith(output):
            raise dataset_files.DatasetError(
                f"the output {url} overlaps the input {text}; write to a separate prefix"
            )


def _check_inputs(output: Path, inputs: Iterable[str | os.PathLike]) -> None:
    real_output = output.resolve()
    for source in inputs:
        text = os.fspath(source)
        if "://" in text:
            continue
        real = Path(text).expanduser().resolve()
        if real == real_output or real_output in real.parents or real in real_output.parents:
            raise dataset_files.DatasetError(
                f"the output {output} overlaps the input {text}; write to a separate directory"
            )
