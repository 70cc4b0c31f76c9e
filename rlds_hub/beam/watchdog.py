"""Worker processes that end with the job that started them.

A Beam worker process (the DirectRunner's multi-processing workers, a local Dask cluster's
workers) outlives a job's driver process that was killed (SIGKILL, out of memory): a worker
that was still starting waits minutes for the driver's control service, holding its memory.
While a pipeline runs, :func:`watching` names the driver in the environment its workers
inherit (``RLDS_HUB_BEAM_DRIVER=<pid>:<start time>``) and starts a small watchdog process
(this file run as a script: standard library only) that holds the read end of a pipe from
the driver. When the pipe closes without the driver saying the run ended, and the driver is
gone, the watchdog ends every process whose environment names that driver. Linux (/proc)
only; elsewhere nothing is watched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

VARIABLE = "RLDS_HUB_BEAM_DRIVER"
DONE = b"done"


def identity(pid: int) -> str | None:
    """``"<pid>:<start time>"`` of a live process (None: gone or a zombie, or no /proc);
    the start time tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return f"{pid}:{fields[19].decode()}"


@contextlib.contextmanager
def watching() -> Iterator[None]:
    """Runs the block (a pipeline) with its worker processes watched (module docstring)."""
    me = identity(os.getpid())
    if me is None:
        yield
        return
    try:
        watchdog = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__), me],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:  # no process to spare: the job runs unwatched
        yield
        return
    previous = os.environ.get(VARIABLE)
    os.environ[VARIABLE] = me
    ended = False
    try:
        yield
        ended = True
    finally:
        if previous is None:
            os.environ.pop(VARIABLE, None)
        else:
            os.environ[VARIABLE] = previous
        assert watchdog.stdin is not None
        with contextlib.suppress(OSError):
            if ended:
                watchdog.stdin.write(DONE)
            watchdog.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            watchdog.wait(timeout=5)


def workers_of(driver: str) -> list[int]:
    """The processes whose environment names ``driver`` (this process excluded)."""
    marker = f"{VARIABLE}={driver}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def end_workers(driver: str, grace: float = 1.0) -> list[int]:
    """SIGTERM, then after ``grace`` seconds SIGKILL, to every worker of ``driver``."""
    workers = workers_of(driver)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in workers:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while sig == signal.SIGTERM and time.monotonic() < deadline:
            if not [p for p in workers if identity(p) is not None]:
                return workers
            time.sleep(0.05)
    return workers


def _main(driver: str) -> None:
    """The watchdog process: waits for the driver's pipe to close, then ends the workers
    if the driver is gone without saying the run ended."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    received = b""
    while True:
        data = os.read(0, 64)
        if not data:
            break
        received += data
    if received != DONE and identity(int(driver.partition(":")[0])) != driver:
        end_workers(driver)  # the driver is gone (a live one shuts its workers down)


if __name__ == "__main__":
    _main(sys.argv[1])
