"""The benchmarks (a package run as ``python -m benchmarks.<name>`` from the repository root)
import cleanly, none touches ``sys.path``, and the shared harness's pieces work on a tiny
workload. The real runs are not tests (docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks import harness

BENCHMARKS = Path(harness.__file__).parent
MODULES = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "__init__")
# sys.path or sys.meta_path changed: insert/append/remove, item or slice assignment, rebinding.
PATH_SURGERY = re.compile(r"sys\.(meta_)?path\s*(\.\s*\w+\s*\(|\[[^\]]*\]\s*=|\+?=(?!=))")


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_imports_without_touching_sys_path(name: str) -> None:
    source = (BENCHMARKS / f"{name}.py").read_text()
    assert not PATH_SURGERY.search(source), f"benchmarks/{name}.py changes sys.path"
    before = (list(sys.path), list(sys.meta_path))
    module = importlib.import_module(f"benchmarks.{name}")
    assert (list(sys.path), list(sys.meta_path)) == before
    assert "python -m benchmarks." in (module.__doc__ or ""), "say how to run it in the docstring"


def test_the_path_surgery_pattern_sees_what_the_old_benchmarks_did() -> None:
    for line in (
        "sys.path.insert(0, ROOT)",
        "sys.path[:] = paths",
        "sys.meta_path[:] = [f for f in sys.meta_path]",
        "sys.path += [tree]",
        "sys.path.append(tree)",
    ):
        assert PATH_SURGERY.search(line), line
    assert not PATH_SURGERY.search("this process's ``sys.path`` is never touched")
    assert not PATH_SURGERY.search("if sys.path == before:")


def test_the_workload_recorded_and_read_back(tmp_path: Path) -> None:
    import rlds_hub.data as data

    path = harness.record_dataset(tmp_path / "ds", 2, episode_steps=10)
    batch = next(iter(data.transitions(path, batch_size=100, shuffle=False)))
    assert batch["observation"].shape == (20, harness.OBS)
    assert batch["observation"].dtype == np.float32
    assert batch["action"].shape == (20, harness.ACT)
    assert np.all(np.abs(batch["action"]) <= 1) and np.any(batch["action"] != 0)
    info = tmp_path / "ds" / "dataset_info.json"
    written = info.stat().st_mtime_ns
    assert harness.record_dataset(tmp_path / "ds", 5, episode_steps=10) == path
    assert info.stat().st_mtime_ns == written, "a recorded workload is reused, not re-recorded"
    assert not (tmp_path / "ds.partial").exists()


def test_the_image_workload() -> None:
    env = harness.StateEnv(image=True, episode_steps=3)
    first = env.reset().observation
    assert first.shape == harness.IMAGE_SHAPE and first.dtype == np.uint8
    assert env.observation_spec().shape == harness.IMAGE_SHAPE
    assert not np.array_equal(first, env.step(None).observation), "the square moves"
    assert env.step(None).last() is False and env.step(None).last() is True


def test_a_child_run_returns_its_json_from_a_fresh_process(tmp_path: Path) -> None:
    result = harness.run_isolated("benchmarks.harness:which_rlds_hub", sample_memory=True)
    assert result["pid"] != os.getpid()
    assert result["peak_tree_mib"] > 1  # the child's own peak at least, however short it ran
    failed = harness.run_isolated(
        "benchmarks.read_throughput:measure", {"mode": "nope", "root": str(tmp_path)}
    )
    assert "unknown mode 'nope'" in failed["error"]


def test_a_child_run_imports_another_trees_rlds_hub(tmp_path: Path) -> None:
    (tmp_path / "before" / "rlds_hub").mkdir(parents=True)
    (tmp_path / "before" / "rlds_hub" / "__init__.py").write_text('__version__ = "before"\n')
    result = harness.run_isolated("benchmarks.harness:which_rlds_hub", tree=tmp_path / "before")
    assert result["version"] == "before"
    this = harness.run_isolated("benchmarks.harness:which_rlds_hub")
    assert this["version"] != "before"
    with pytest.raises(ValueError, match="no rlds_hub"):
        harness.run_isolated("benchmarks.harness:which_rlds_hub", tree=tmp_path)


def test_machine_line() -> None:
    line = harness.machine_line(("numpy",), busy=False)
    assert f"{os.cpu_count()} cores" in line
    assert f"numpy {np.__version__}" in line and "Python 3." in line
    assert re.search(r"load average [\d.]+/[\d.]+/[\d.]+", line)
    assert re.search(r"\d+ other busy processes$", harness.machine_line((), busy=True))


def test_best_of_and_the_tables() -> None:
    pauses = iter([0.03, 0.001, 0.02])
    best = harness.best_of(lambda: time.sleep(next(pauses)), 3)
    assert 0.001 <= best < 0.02
    with pytest.raises(ValueError, match="at least 1"):
        harness.best_of(lambda: None, 0)
    assert harness.spread([3.0, 1.0, 2.0, 10.0]) == (2.5, 1.0, 10.0)
    assert [harness.si(x) for x in (3_740_000, 259_000, 912)] == ["3.74M", "259k", "912"]
    assert harness.ratio_table({"ours": 3e6, "ceiling": 6e6}, "ceiling") == (
        "| what | per second | / ceiling |\n"
        "| --- | --- | --- |\n"
        "| ours | 3.00M | 0.50 |\n"
        "| ceiling | 6.00M | 1.00 |"
    )
    with pytest.raises(KeyError, match="reference row 'peer'"):
        harness.ratio_table({"ours": 1.0}, "peer")


def test_peak_memory_of_this_process() -> None:
    harness.reset_peak_rss()
    before = harness.status_mib("VmHWM")
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    assert harness.status_mib("VmHWM") - before > 50
    del block
    with pytest.raises(KeyError, match="no VmNope"):
        harness.status_mib("VmNope")


def test_the_load_client_reads_sized_and_chunked_bodies() -> None:
    from benchmarks import server_load

    class Writer:
        def write(self, data: bytes) -> None:
            pass

    async def two_requests(raw: bytes) -> list[tuple[int, int]]:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return [await server_load._fetch(reader, Writer(), "/x") for _ in range(2)]

    sized = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
    chunked = (
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n"
    )
    # the connection stays usable after each: the next response is read whole
    assert asyncio.run(two_requests(chunked + sized)) == [(404, 8), (200, 5)]
    assert asyncio.run(two_requests(sized + chunked)) == [(200, 5), (404, 8)]
    with pytest.raises(RuntimeError, match="neither Content-Length nor chunks"):
        asyncio.run(two_requests(b"HTTP/1.1 200 OK\r\n\r\n" + sized))


def test_the_tree_sampler_sees_a_living_process_at_once() -> None:
    """The sampler takes its first sample when it starts (a child that ends within 0.1 s used
    to report 0 MiB), and then keeps the largest total."""
    with harness._peak_tree_memory(os.getpid(), True) as peak:
        time.sleep(0.05)
    assert peak[0] > 2**20
