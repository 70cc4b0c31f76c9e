"""File-system work done off the step path: creating empty files, deleting garbage, and
queued jobs such as growing the shard being filled.

Creating and freeing a file can cost several times what writing an episode's 100 KB costs
(on ext4 mounted with ``discard``, for one: docs/benchmarks.md, "Recording"). A recorder
publishes every episode with two new files (its shard and a new ``dataset_info.json``) and
leaves two garbage files, so a background thread keeps a few empty hidden files created in
advance and deletes garbage, and the step path only writes and renames. Everything this thread touches carries ``TMP_PREFIX``; what a killed process leaves
is removed when the dataset is next opened.
"""

from __future__ import annotations

import collections
import itertools
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlds_hub.storage.dataset_files import TMP_PREFIX, remove_quietly, write_fd

_SPARES = 4


class BackgroundFiles:
    """Spare empty files for one directory, deletion of garbage files, and queued calls, on
    one worker thread (jobs run in the order they are queued)."""

    def __init__(self, directory: Path):
        self._directory = directory
        self._names = itertools.count()
        self._prefix = f"{TMP_PREFIX}{os.getpid()}-{id(self):x}-"
        self._spares: collections.deque[tuple[int, Path]] = collections.deque()
        self._jobs: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rlds-files", daemon=True)
            self._thread.start()
            for _ in range(_SPARES):
                self._jobs.put(("spare", None))

    def hidden_name(self, kind: str) -> Path:
        """A new hidden (``.tmp-``) path in the directory, unique to this writer."""
        return self._directory / f"{self._prefix}{kind}-{next(self._names)}"

    _name = hidden_name

    def _create(self) -> tuple[int, Path]:
        path = self._name("spare")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        return fd, path

    def take(self) -> tuple[int, Path]:
        """An open, empty, hidden file in the directory (created now if none is ready)."""
        self._start()
        self._jobs.put(("spare", None))
        try:
            return self._spares.popleft()
        except IndexError:
            return self._create()

    def write_new(self, data: bytes, *, sync: bool) -> Path:
        """A hidden file holding ``data`` (complete, closed) to rename into place."""
        fd, path = self.take()
        write_fd(fd, data, sync=sync)
        return path

    def discard(self, path: Path) -> None:
        """Renames ``path`` out of the way now (its name may be reused at once) and deletes
        it in the background."""
        trash = self._name("trash")
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        self.delete(trash)

    def delete(self, path: Path) -> None:
        """Deletes ``path`` in the background; its name must not be reused meanwhile."""
        self._start()
        self._jobs.put(("delete", path))

    def call(self, function: Callable[[], None]) -> None:
        """Runs ``function`` on the worker thread, after every job queued before it."""
        self._start()
        self._jobs.put(("call", function))

    def drain(self) -> None:
        """Waits for every job queued so far; re-raises the first error of a ``call``."""
        if self._thread is not None:
            done = threading.Event()
            self._jobs.put(("call", done.set))
            done.wait()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def replace(self, path: Path, data: bytes, *, sync: bool) -> None:
        """Atomically replaces ``path`` with ``data``; the old version is freed in the
        background (a hard link keeps it alive past the rename)."""
        self.prepare_replace(path, data, sync=sync)()

    def prepare_replace(self, path: Path, data: bytes, *, sync: bool) -> Callable[[], None]:
        """Does all the work of :meth:`replace` but the final rename, which the returned
        function performs (one system call): callers put another rename right before it."""
        new = self.write_new(data, sync=sync)
        trash: Path | None = self._name("trash")
        try:
            os.link(path, trash)
        except OSError:  # no old version, or no hard links on this file system
            trash = None

        def commit() -> None:
            os.replace(new, path)
            if trash is not None:
                self.delete(trash)

        return commit

    def _run(self) -> None:
        while True:
            kind, path = self._jobs.get()  # path: a Path, or a callable for "call"
            if kind == "stop":
                return
            if kind == "delete":
                remove_quietly(path)
            elif kind == "call":
                try:
                    path()
                except BaseException as e:  # reported by drain()
                    self._error = self._error or e
            elif len(self._spares) < _SPARES:
                self._spares.append(self._create())

    def close(self) -> None:
        """Finishes the queued deletions and removes the unused spare files."""
        if self._thread is not None:
            self._jobs.put(("stop", None))
            self._thread.join()
            self._thread = None
        while self._spares:
            fd, path = self._spares.popleft()
            os.close(fd)
            remove_quietly(path)
