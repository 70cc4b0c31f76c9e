"""Running one job's pipeline with progress, and its provenance — the part every job
(convert, reshard, filter, ...) shares; the staging and the commit are its
:class:`~rlds_hub.beam.session.WriteSession`."""

from __future__ import annotations

import datetime
import os
import re
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rlds_hub.beam import watchdog
from rlds_hub.beam.options import describe_runner, pipeline_options
from rlds_hub.beam.quiet import FilteredStderr
from rlds_hub.format.metadata import JobProvenance


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def provenance(
    job: str,
    arguments: dict[str, Any],
    sources: list[dict[str, Any]],
    flags: Sequence[str],
    previous: JobProvenance | None = None,
) -> JobProvenance:
    """The ``provenance`` entry of an output's ``metadata.json`` (and of ``export.json``)."""
    from rlds_hub._version import __version__

    return JobProvenance(
        job=job,
        arguments=_plain(arguments),
        sources=sources,
        rlds_hub_version=__version__,
        time=now(),
        runner=describe_runner(flags),
        previous=previous,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not callable(v)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class _Progress:
    """Counts the episodes the sink's first stage has written (its ``.n`` files), on a
    background thread, into a tqdm bar."""

    def __init__(self, pieces: Path, total: int | None, description: str, quiet: bool):
        from tqdm import tqdm

        self._pieces = pieces
        self._bar = tqdm(
            total=total, unit="episode", desc=description, disable=quiet, dynamic_ncols=True
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _count(self) -> int:
        done = 0
        for path in self._pieces.glob("*.n"):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if len(data) == 8:
                done += struct.unpack("<Q", data)[0]
        return done

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._update()

    def _update(self) -> None:
        done = self._count()
        if self._bar.total is not None:
            done = min(done, self._bar.total)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._update()
        self._bar.close()


def run_pipeline(
    flags: Sequence[str],
    build: Callable[[Any], None],
    *,
    progress_dir: str | os.PathLike,
    total: int | None = None,
    description: str = "",
    quiet: bool = False,
) -> float:
    """Builds the pipeline with ``build(pipeline)`` and runs it to completion; returns the
    seconds it took. Progress counts the ``*.n`` counter files workers keep in
    ``progress_dir``. While it runs, Beam's and Dask's chatter is kept off standard
    error (all their log lines below ERROR with ``quiet``; :mod:`rlds_hub.beam.quiet`), and
    worker processes end when this process is killed (:mod:`rlds_hub.beam.watchdog`)."""
    import apache_beam as beam

    options = pipeline_options(flags)
    started = time.perf_counter()
    progress = _Progress(Path(progress_dir), total, description, quiet)
    try:
        with FilteredStderr(quiet), watchdog.watching():
            pipeline = beam.Pipeline(options=options)
            build(pipeline)
            result = pipeline.run()
            try:
                result.wait_until_finish()
            finally:
                client = getattr(result, "client", None)  # the DaskRunner's dask Client
                if client is not None:
                    client.close()
        state = str(getattr(result, "state", "DONE"))
        if "DONE" not in state:
            raise RuntimeError(f"the pipeline ended in state {state}; nothing was committed")
    except BaseException as e:
        progress.close()
        if isinstance(e, Exception) and not isinstance(e, (ValueError, OSError)):
            raise PipelineError(user_message(e)) from e
        raise
    progress.close()
    return time.perf_counter() - started


class PipelineError(ValueError):
    """A job's pipeline failed; the message is the original error's (a worker's errors reach
    the driver wrapped in the runner's own exception and traceback text)."""


_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.*)$")


def user_message(error: BaseException) -> str:
    """The innermost ``SomeError: message`` line of a runner's wrapped exception."""
    found = None
    for line in str(error).splitlines():
        match = _ERROR_LINE.match(line.strip())
        if match:
            found = match.group(2)
    message = found or (str(error).strip().splitlines() or [type(error).__name__])[-1]
    message = re.sub(r"\s*\[while running '[^']*'\]", "", message)
    return message + "; nothing was written"


class Counter:
    """A worker's progress counter file (``<directory>/<random>.n``) for :class:`_Progress`."""

    def __init__(self, directory: str):
        import uuid

        self._path = os.path.join(directory, uuid.uuid4().hex + ".n")
        self._fd: int | None = None
        self.count = 0

    def add(self, count: int) -> None:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT, 0o644)
        self.count += count
        os.pwrite(self._fd, struct.pack("<Q", self.count), 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
