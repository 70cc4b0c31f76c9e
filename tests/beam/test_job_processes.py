"""A job's processes: ``--quiet`` prints nothing but the result (no Beam or Dask chatter
from the driver or its workers), and worker processes end soon after their job's driver is
killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlds_hub.beam.quiet import LineFilter
from rlds_hub.testing.beam_jobs import record_nested

ROOT = Path(__file__).resolve().parents[2]
MULTI = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("processes") / "source"
    record_nested(path, episodes=3, lengths=(3, 4))
    return path


def _run(arguments, cwd):
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )


@pytest.mark.slow
def test_quiet_jobs_print_only_their_result(source, tmp_path):
    result = _run(
        [
            "-m",
            "rlds_hub.cli",
            "reshard",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out"),
            "--quiet",
            *MULTI,
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("reshard: wrote ") and result.stdout.count("\n") == 1


def test_the_filter_drops_chatter_and_keeps_errors():
    quiet, loud = LineFilter(quiet=True), LineFilter(quiet=False)
    chatter = [
        b"WARNING:root:apitools not found, and bigquery client libraries are not "
        b"available despite the import not raising an ImportError.\n",
        b"INFO:__main__:Logging handler created.\n",
        b"WARNING:__main__:No semi_persistent_directory found:  User registered\n",
        b"WARNING:apache_beam.options.pipeline_options:Discarding unparseable args: "
        b"['--direct_runner_use_stacked_bundle', '--pipeline_type_check']\n",
        b"INFO:distributed.scheduler:State start\n",
    ]
    for line in chatter:
        assert not quiet.keep(line) and not loud.keep(line)
    beam_warning = b"WARNING:apache_beam.runners.direct:something worth knowing\n"
    assert loud.keep(beam_warning) and not quiet.keep(beam_warning)
    assert not quiet.keep(b'  File "x.py", line 3, in f\n')  # the dropped line's rest
    for line in (
        b"ERROR:apache_beam.runners.common:it broke\n",
        b"my function prints\n",
        b"\rfilter:  40%|####      | 2/5\r",
    ):
        assert quiet.keep(line) and loud.keep(line)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def _workers(pid: int) -> list[int]:
    found = []
    for child in _descendants(pid):
        try:
            if b"sdk_worker_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_worker_processes_end_soon_after_their_job_is_killed(source, tmp_path):
    """Killed while its workers start: they used to wait minutes for the dead driver."""
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.reshard",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out"),
            "--quiet",
            *MULTI,
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not _workers(driver.pid):
            assert time.time() < deadline and driver.poll() is None
            time.sleep(0.05)
        time.sleep(0.3)
        workers = _descendants(driver.pid)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    deadline = time.time() + 10
    while any(_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "worker processes outlived their job"
