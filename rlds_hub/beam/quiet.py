"""Keeping Beam's and Dask's chatter off the terminal while a job runs.

Beam's worker processes (DirectRunner in multi-processing mode, Dask's workers) log to the
standard error they inherit, before any option of ours reaches them: "apitools not found",
"Logging handler created", "No semi_persistent_directory found", "Discarding unparseable
args" for flags Beam passes itself, and Dask's scheduler and nanny INFO lines. While a
pipeline runs, file descriptor 2 of the driver (which every worker inherits) is a pipe read
by a thread that forwards every line except:

- always, those lines of known harmless chatter;
- with ``quiet``, every DEBUG / INFO / WARNING log line of Beam, Dask and the root logger
  (with its continuation lines).

Errors, tracebacks, and anything else (a user function's own prints) pass unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import threading
from types import TracebackType

_CHATTER = re.compile(
    rb"^(WARNING:root:apitools not found"
    rb"|INFO:__main__:Logging handler created"
    rb"|WARNING:__main__:No semi_persistent_directory found"
    rb"|WARNING:apache_beam\.options\.pipeline_options:Discarding unparseable args: "
    rb"\[('--(pipeline_type_check|direct_runner_use_stacked_bundle)'(, )?)+\]$"
    rb"|INFO:distributed[\w.]*:"
    rb"|[\d:, -]+ - distributed[\w.]* - INFO - )"
)
_LOG_LINE = re.compile(
    rb"^((DEBUG|INFO|WARNING):(root|__main__|apache_beam|distributed|dask|tornado|asyncio)"
    rb"[\w.]*:"
    rb"|[\d:, -]+ - (distributed|dask|tornado)[\w.]* - (DEBUG|INFO|WARNING) - )"
)
_HEADER = re.compile(rb"^((DEBUG|INFO|WARNING|ERROR|CRITICAL):|\d{4}-\d\d-\d\d )")
_CONTINUATION = re.compile(rb"^([ \t]|Traceback |$)")


class LineFilter:
    """Decides line by line what reaches the terminal (see the module docstring)."""

    def __init__(self, quiet: bool):
        self._quiet = quiet
        self._dropping = False

    def keep(self, line: bytes) -> bool:
        text = line.lstrip(b"\r")
        if _CHATTER.match(text) or (self._quiet and _LOG_LINE.match(text)):
            self._dropping = True
            return False
        if self._dropping and text.strip(b"\r\n") and _CONTINUATION.match(text):
            return False
        self._dropping = False
        return True


_ACTIVE = threading.Lock()  # one filter per process at a time (jobs may run in threads)


class FilteredStderr:
    """A context manager: while it is open, what is written to file descriptor 2 (by this
    process and by the processes it starts) goes through a :class:`LineFilter`. While one
    is open in this process, another does nothing."""

    def __init__(self, quiet: bool):
        self._filter = LineFilter(quiet)
        self._original: int | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FilteredStderr:
        if not _ACTIVE.acquire(blocking=False):
            return self
        try:
            sys.stderr.flush()
            original = os.dup(2)
            read, write = os.pipe()
        except (OSError, ValueError, AttributeError):
            _ACTIVE.release()
            return self  # no file descriptor 2 to filter
        os.dup2(write, 2)
        os.close(write)
        self._original = original
        self._thread = threading.Thread(
            target=self._forward, args=(read, original), daemon=True, name="rlds_hub-stderr-filter"
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._original is None:
            return
        try:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(self._original, 2)  # the pipe stays open while a worker still holds it
            assert self._thread is not None
            self._thread.join(timeout=0.5)
        finally:
            self._original = None
            _ACTIVE.release()

    def _forward(self, read: int, out: int) -> None:
        pending = b""
        try:
            while True:
                ready, _, _ = select.select([read], [], [], 0.05)
                if not ready:
                    if pending:  # a progress bar's line, not ended yet
                        self._write(out, pending)
                        pending = b""
                    continue
                data = os.read(read, 65536)
                if not data:
                    break
                if pending and _HEADER.match(data):  # another process's line
                    self._write(out, pending)
                    pending = b""
                pending += data
                *lines, pending = re.split(rb"(?<=[\n\r])", pending)
                for line in lines:
                    self._write(out, line)
            if pending:
                self._write(out, pending)
        finally:
            os.close(read)
            os.close(out)

    def _write(self, out: int, line: bytes) -> None:
        if self._filter.keep(line):
            view = memoryview(line)
            while view:
                view = view[os.write(out, view) :]
