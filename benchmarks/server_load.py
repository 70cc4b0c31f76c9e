"""Load on the dataset service: an index of 100,000 episodes, 32 concurrent clients on loopback.

Workload: one dataset recorded with rlds_hub's recorder — 100,000 episodes of 101-200 steps
(8-d float32 observations in two fields, 2-d float32 actions, float64 rewards, episode
metadata operator / task_id / success), shards of up to 1,000 episodes. Measured in one run:

- indexing the 100,000 episodes into a fresh SQLite index, with the statistics computed
  and with ``statistics.json`` present, and re-indexing it unchanged; the ceiling is the least
  work an index needs: ``json.loads`` of every ``episodes.jsonl`` line and a bulk insert of
  its rows (with the same indexes) through plain ``sqlite3``;
- ``rlds-hub serve`` (one uvicorn process, no access log) under 32 keep-alive clients for a
  bounded time per scenario: the trivial endpoint ``/healthz`` (the framework's ceiling),
  dataset detail, the dataset list, filtered episode pages (filters from a fixed set, random
  pages and orderings, as viewers page through results: answered from the page cache), pages
  at random offsets among the first 2,000 matches of those filters (page cache misses; the
  filter's count is cached),
  filtered pages whose filter is new on every request (nothing cached), 100-step JSON slices
  of random episodes, and a mix of detail, filtered pages and slices; p50/p99 latency,
  requests/s, errors;
- bulk slices (whole episodes, every field) as JSON, Arrow and NPZ: MB/s of response and of
  array data, against a raw ASGI app on the same uvicorn returning a body of the same size
  (the transfer ceiling); the peer for a 100-step slice is plain TFDS reading that episode
  in-process (what a notebook does without the service), and the core reader in-process;
- the server's resident memory after the runs.

Run from the repository root:

    python -m benchmarks.server_load [--data DIR] [--episodes 100000] [--duration 5]

The dataset is recorded once into ``--data`` (default: a directory under /tmp) and reused.
Its workload is the service's own (dict observations and episode metadata to filter on), not
``benchmarks.harness.StateEnv``; the machine line and tables are the harness's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness

NAME = "bench"
OPERATORS = ("alice", "bob", "carol", "dan")
FILTERS = (  # (query string) filtered episode pages a viewer would page through
    "min_return=60",
    "min_return=40&max_return=80&order_by=-return",
    "meta=operator%3Dalice&order_by=-length",
    "terminated=true&min_length=150",
    "meta=success%3Dtrue&meta=task_id%3E%3D500&order_by=return",
    "max_length=120&order_by=-return",
)


# ---- the dataset -------------------------------------------------------------------------


def record(path: Path, episodes: int) -> None:
    import dm_env
    import numpy as np
    from dm_env import specs
    from tqdm import tqdm

    from rlds_hub.recorders import Recorder

    class Env(dm_env.Environment):
        def __init__(self) -> None:
            self.rng = np.random.default_rng(0)
            self.episode = -1

        def _observation(self) -> dict:
            return {
                "position": self.rng.standard_normal(4, np.float32),
                "velocity": self.rng.standard_normal(4, np.float32),
            }

        def reset(self) -> dm_env.TimeStep:
            self.episode += 1
            self.t = 0
            self.length = int(self.rng.integers(101, 201))
            self.skill = float(self.rng.uniform(0, 1))
            return dm_env.restart(self._observation())

        def step(self, action: object) -> dm_env.TimeStep:
            self.t += 1
            reward = self.skill + 0.1 * float(self.rng.standard_normal())
            if self.t >= self.length:
                if self.episode % 3 == 0:
                    return dm_env.termination(reward, self._observation())
                return dm_env.truncation(reward, self._observation(), 0.99)
            return dm_env.transition(reward, self._observation(), 0.99)

        def observation_spec(self) -> dict:
            return {
                "position": specs.Array((4,), np.float32, "position"),
                "velocity": specs.Array((4,), np.float32, "velocity"),
            }

        def action_spec(self) -> specs.BoundedArray:
            return specs.BoundedArray((2,), np.float32, -1.0, 1.0)

    env = Env()

    def episode_fn(timestep: object, action: object, environment: Env) -> dict:
        return {
            "operator": OPERATORS[environment.episode % 4],
            "task_id": np.int64(environment.episode % 1000),
            "success": np.bool_(environment.skill > 0.5),
        }

    action = np.zeros(2, np.float32)
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with Recorder(
        env, tmp, name=NAME, episode_fn=episode_fn, env_name="bench/random", policy_name="zeros"
    ) as recorder:
        for _ in tqdm(range(episodes), desc="recording", unit="episode"):
            timestep = recorder.reset()
            while not timestep.last():
                timestep = recorder.step(action)
    os.replace(tmp, path)


# ---- indexing ----------------------------------------------------------------------------


def index_into(root: Path, url: str, *, compute_statistics: bool) -> tuple[float, object]:
    from rlds_hub.server.index import database
    from rlds_hub.server.index.indexer import Indexer

    engine = database.make_engine(url)
    database.migrate(engine)
    indexer = Indexer(
        engine, [root], compute_statistics=compute_statistics, compute_checksums=compute_statistics
    )
    started = time.perf_counter()
    report = indexer.scan()
    seconds = time.perf_counter() - started
    again = time.perf_counter()
    unchanged = indexer.scan()
    assert [o.action for o in unchanged.outcomes] == ["unchanged"], unchanged.outcomes
    engine.dispose()
    return seconds, (report, time.perf_counter() - again)


def index_ceiling(dataset: Path, target: Path) -> float:
    """json.loads of every episodes.jsonl line and a bulk insert through plain sqlite3."""
    started = time.perf_counter()
    connection = sqlite3.connect(target)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(
        "CREATE TABLE episodes (dataset_id INTEGER, split TEXT, episode INTEGER, "
        "length INTEGER, return_value REAL, is_terminal INTEGER, metadata TEXT, "
        "PRIMARY KEY (dataset_id, split, episode))"
    )
    connection.execute("CREATE INDEX r ON episodes (dataset_id, split, return_value)")
    connection.execute("CREATE INDEX l ON episodes (dataset_id, split, length)")
    rows = []
    with open(dataset / "episodes.jsonl", "rb") as f:
        for line in f:
            row = json.loads(line)
            rows.append(
                (
                    1,
                    row["split"],
                    row["episode"],
                    row["num_steps"],
                    row.get("return"),
                    row["terminated"],
                    json.dumps(row.get("metadata")),
                )
            )
    with connection:
        connection.executemany("INSERT INTO episodes VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    connection.close()
    return time.perf_counter() - started


# ---- load --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _fetch(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[int, int]:
    """One keep-alive GET: (status, body bytes); bodies sized or chunked (streamed slices)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:] if ":" in line)
    }
    if "content-length" in headers:
        length = int(headers["content-length"])
        await reader.readexactly(length)
        return status, length
    if headers.get("transfer-encoding", "").lower() != "chunked":
        raise RuntimeError(f"{path}: a response with neither Content-Length nor chunks: {head!r}")
    length = 0
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        await reader.readexactly(size + 2)  # the chunk and its CRLF
        length += size
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the empty line
        pass
    return status, length


async def _load(port: int, choose, clients: int, duration: float) -> list[tuple]:
    """``clients`` keep-alive connections requesting ``choose()`` paths for ``duration`` s."""
    results: list[tuple] = []
    deadline = time.perf_counter() + duration

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                kind, path = choose(rng)
                started = time.perf_counter()
                status, size = await _fetch(reader, writer, path)
                results.append((kind, time.perf_counter() - started, status, size))
        finally:
            writer.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return results


def run_load(port: int, choose, clients: int, duration: float) -> list[tuple]:
    return asyncio.run(_load(port, choose, clients, duration))


def summarize(results: list[tuple], duration: float) -> dict[str, dict]:
    by_kind: dict[str, list[tuple]] = {}
    for item in results:
        by_kind.setdefault(item[0], []).append(item)
    out = {}
    for kind, items in by_kind.items():
        latencies = sorted(i[1] for i in items)
        out[kind] = {
            "requests": len(items),
            "rps": len(items) / duration,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "errors": sum(1 for i in items if i[2] != 200),
            "mb_s": sum(i[3] for i in items) / duration / 2**20,
        }
    return out


def median_rounds(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    """Per scenario and kind, the median over rounds of each figure, and of the ratio to the
    trivial endpoint's requests/s in the same round (the machine's load drifts between
    rounds; within a round the scenarios run back to back)."""
    out: dict[str, dict] = {}
    for scenario, kinds in rounds[0].items():
        out[scenario] = {}
        for kind in kinds:
            rows = [r[scenario][kind] for r in rounds]
            ratios = [r[scenario][kind]["rps"] / r["trivial"]["trivial"]["rps"] for r in rounds]
            merged = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
            merged["errors"] = sum(row["errors"] for row in rows)
            merged["ratio"] = statistics.median(ratios)
            merged["ratios"] = ratios
            out[scenario][kind] = merged
    return out


def scenarios(episodes: int, lengths: list[int]) -> dict[str, object]:
    base = f"/api/v1/datasets/{NAME}"

    def trivial(rng):
        return "trivial", "/healthz"

    def detail(rng):
        return "detail", base

    def listing(rng):
        return "list", "/api/v1/datasets?q=bench&limit=20"

    def filtered(rng):
        offset = rng.randrange(0, 1000, 50)
        return "filtered", f"{base}/episodes?{rng.choice(FILTERS)}&limit=50&offset={offset}"

    def new_pages(rng):
        offset = rng.randrange(0, 2000)
        return "new page", f"{base}/episodes?{rng.choice(FILTERS)}&limit=50&offset={offset}"

    def cold(rng):
        low = rng.uniform(0, 150)
        return "cold filter", f"{base}/episodes?min_return={low:.6f}&order_by=-return&limit=50"

    def steps(rng):
        index = rng.randrange(episodes)
        start = rng.randrange(0, lengths[index] - 100 + 1)
        return "slice", f"{base}/episodes/{index}/steps?start={start}&stop={start + 100}"

    def mixed(rng):
        return rng.choice((detail, filtered, steps))(rng)

    return {
        "trivial": trivial,
        "detail": detail,
        "list": listing,
        "filtered": filtered,
        "new page": new_pages,
        "cold filter": cold,
        "slice": steps,
        "mixed": mixed,
    }


# ---- bulk --------------------------------------------------------------------------------


def decode(fmt: str, content: bytes) -> dict:
    """The arrays of a steps response, as a client gets them (JSON: NumPy from the lists)."""
    import io

    import numpy as np
    import pyarrow as pa

    if fmt == "arrow":
        table = pa.ipc.open_stream(content).read_all()
        return {
            name: column.combine_chunks()
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    if fmt == "npz":
        with np.load(io.BytesIO(content)) as archive:
            return {k: archive[k] for k in archive.files if k != "__rlds_hub__"}
    body = json.loads(content)
    return {k: np.asarray(v, dtype=body["dtypes"][k]) for k, v in body["fields"].items()}


def bulk(port: int, lengths: list[int], count: int) -> dict[str, dict]:
    """One client fetching whole episodes (every field) and 100-step slices, per format:
    ms per request, ms to decode, response and array MB/s."""
    import httpx

    rng = random.Random(1)
    chosen = [rng.randrange(len(lengths)) for _ in range(count)]
    out = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for what, fmt in (
            ("episode", "json"),
            ("episode", "arrow"),
            ("episode", "npz"),
            ("100 steps", "json"),
            ("100 steps", "arrow"),
        ):
            sizes, array_bytes, request_s, decode_s = 0, 0, 0.0, 0.0
            client.get(
                f"/api/v1/datasets/{NAME}/episodes/0/steps",  # warm (imports pyarrow)
                params={"format": fmt},
            ).raise_for_status()
            for index in chosen:
                params = {"format": fmt}
                if what != "episode":
                    params.update(start=0, stop=100)
                started = time.perf_counter()
                response = client.get(
                    f"/api/v1/datasets/{NAME}/episodes/{index}/steps", params=params
                )
                response.raise_for_status()
                content = response.content
                received = time.perf_counter()
                arrays = decode(fmt, content)
                decode_s += time.perf_counter() - received
                request_s += received - started
                sizes += len(content)
                array_bytes += sum(getattr(a, "nbytes", 0) for a in arrays.values())
            out[f"{what} {fmt}"] = {
                "ms": 1000 * request_s / count,
                "decode_ms": 1000 * decode_s / count,
                "bytes": sizes / count,
                "mb_s": sizes / request_s / 2**20,
                "array_mb_s": array_bytes / (request_s + decode_s) / 2**20,
            }
    return out


@functools.cache
def _ceiling_body() -> bytes:
    return b"x" * int(os.environ["BODY_BYTES"])


async def transfer_ceiling_app(scope: dict, receive: Any, send: Any) -> None:
    """A raw ASGI app answering every request with ``BODY_BYTES`` bytes (the transfer
    ceiling, served by its own uvicorn)."""
    if scope["type"] != "http":
        return
    body = _ceiling_body()
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def bytes_ceiling(body_bytes: int, count: int) -> float:
    """MB/s of ``count`` requests to the transfer ceiling, one client."""
    import httpx

    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.server_load:transfer_ceiling_app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=harness.REPO_ROOT,
        env={**os.environ, "BODY_BYTES": str(int(body_bytes))},
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/", process)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            started = time.perf_counter()
            total = sum(len(client.get("/").content) for _ in range(count))
            return total / (time.perf_counter() - started) / 2**20
    finally:
        process.terminate()
        process.wait()


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout} s")


def peers(dataset: Path, lengths: list[int], count: int) -> dict[str, float]:
    """ms per 100-step slice read in-process: plain TFDS, and the core reader."""
    from rlds_hub.cli import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow_datasets as tfds

    from rlds_hub.storage import open_dataset, read_episode

    rng = random.Random(2)
    chosen = [rng.randrange(len(lengths)) for _ in range(count)]
    builder = tfds.builder_from_directory(str(dataset))
    started = time.perf_counter()
    for index in chosen:
        episode = next(iter(builder.as_dataset(split=f"train[{index}:{index + 1}]")))
        steps = list(episode["steps"].skip(1).take(100).as_numpy_iterator())
        assert len(steps) == 100
    tfds_ms = 1000 * (time.perf_counter() - started) / count
    opened = open_dataset(dataset)
    started = time.perf_counter()
    for index in chosen:
        read_episode(opened, "train", index)
    core_ms = 1000 * (time.perf_counter() - started) / count
    return {"tfds": tfds_ms, "core": core_ms}


# ---- main --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="/tmp/rlds_hub_server_bench")
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds per scenario and round"
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of every scenario (medians are reported)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds of the same load before each measured scenario",
    )
    parser.add_argument("--bulk", type=int, default=100, help="episodes fetched per format")
    args = parser.parse_args()

    import psutil

    from rlds_hub.inspection import save_statistics
    from rlds_hub.inspection import statistics as compute_statistics
    from rlds_hub.storage import episode_table

    machine = harness.machine_line(("numpy", "rlds_hub", "fastapi", "uvicorn"))
    load_at_start = harness.load_average()
    data = Path(args.data) / f"{args.episodes}"
    dataset = data / NAME
    if not (dataset / "dataset_info.json").exists():
        data.mkdir(parents=True, exist_ok=True)
        record(dataset, args.episodes)
    (dataset / "statistics.json").unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rlds_hub_server_bench_"))
    lengths = [row["num_steps"] for row in episode_table(dataset, "train")]
    steps = sum(lengths)
    print(f"dataset: {len(lengths):,} episodes, {steps:,} steps", flush=True)

    computed, (report, _) = index_into(
        data, f"sqlite:///{work}/computed.sqlite3", compute_statistics=True
    )
    assert report.count("indexed") == 1, report.outcomes
    save_statistics(dataset, compute_statistics(dataset, "train"), computed_by="benchmark")
    saved, (_, unchanged) = index_into(
        data, f"sqlite:///{work}/index.sqlite3", compute_statistics=False
    )
    ceiling = index_ceiling(dataset, work / "ceiling.sqlite3")

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlds_hub.cli",
            "serve",
            "--root",
            str(data),
            "--database-url",
            f"sqlite:///{work}/index.sqlite3",
            "--no-scan",
            "--no-access-log",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        choosers = scenarios(len(lengths), lengths)
        rounds: list[dict[str, dict]] = []
        for round_number in range(args.rounds):
            loads: dict[str, dict] = {}
            for name in (
                "trivial",
                "detail",
                "list",
                "filtered",
                "new page",
                "cold filter",
                "slice",
                "mixed",
            ):
                run_load(port, choosers[name], args.clients, args.warmup)  # not measured
                results = run_load(port, choosers[name], args.clients, args.duration)
                loads[name] = summarize(results, args.duration)
                print(f"  round {round_number} {name}: {json.dumps(loads[name])}", flush=True)
            rounds.append(loads)
        loads = median_rounds(rounds)
        bulk_results = bulk(port, lengths, args.bulk)
        memory = psutil.Process(server.pid).memory_info().rss / 2**20
    finally:
        server.terminate()
        server.wait()
    transfer = bytes_ceiling(bulk_results["episode arrow"]["bytes"], args.bulk)
    peer = peers(dataset, lengths, 20)
    shutil.rmtree(work, ignore_errors=True)

    n = len(lengths)
    indexing = harness.table(
        ["what", "seconds", "episodes/s", "ceiling / ours"],
        [
            (
                "index, statistics and checksums computed",
                f"{computed:.1f}",
                f"{n / computed:,.0f}",
                f"{ceiling / computed:.2f}",
            ),
            (
                "index, statistics.json present",
                f"{saved:.1f}",
                f"{n / saved:,.0f}",
                f"{ceiling / saved:.2f}",
            ),
            ("re-index unchanged", f"{unchanged:.3f}", "", ""),
            (
                "ceiling: json.loads + sqlite3 bulk insert",
                f"{ceiling:.1f}",
                f"{n / ceiling:,.0f}",
                "1.00",
            ),
        ],
    )
    requests = harness.table(
        ["scenario", "kind", "requests/s", "/ trivial (rounds)", "p50 ms", "p99 ms", "errors"],
        [
            (
                scenario,
                kind,
                f"{row['rps']:,.0f}",
                f"{row['ratio']:.2f} ({', '.join(f'{r:.2f}' for r in row['ratios'])})",
                f"{row['p50_ms']:.1f}",
                f"{row['p99_ms']:.1f}",
                row["errors"],
            )
            for scenario, kinds in loads.items()
            for kind, row in sorted(kinds.items())
        ],
    )
    bulk_rows = [
        (
            *name.rsplit(" ", 1),
            f"{row['ms']:.1f}",
            f"{row['decode_ms']:.1f}",
            f"{row['bytes']:,.0f}",
            f"{row['mb_s']:.1f}",
            f"{row['array_mb_s']:.1f}",
            f"{row['mb_s'] / transfer:.2f}",
        )
        for name, row in bulk_results.items()
    ]
    bulk_rows.append(
        (
            "ceiling: a raw ASGI body of the episode Arrow size",
            "",
            "",
            "",
            "",
            f"{transfer:.1f}",
            "",
            "1.00",
        )
    )
    bulk_table = harness.table(
        [
            "slice",
            "format",
            "ms / request",
            "ms to decode",
            "bytes",
            "response MB/s",
            "array MB/s",
            "response / transfer ceiling",
        ],
        bulk_rows,
    )
    arrow_100 = bulk_results["100 steps arrow"]
    json_100 = bulk_results["100 steps json"]
    readers = {
        "the service over HTTP, Arrow (request + decode)": arrow_100["ms"] + arrow_100["decode_ms"],
        "the service over HTTP, JSON (request + decode)": json_100["ms"] + json_100["decode_ms"],
        "peer: plain TFDS in-process (train[i:i+1], skip, take 100)": peer["tfds"],
        "rlds_hub core read_episode in-process (one record read by its offset, CRC-checked)": (
            peer["core"]
        ),
    }
    service_ms = arrow_100["ms"] + arrow_100["decode_ms"]
    slice_table = harness.table(
        ["reader", "ms", "/ the service (Arrow)"],
        [(name, f"{ms:.1f}", f"{ms / service_ms:.2f}") for name, ms in readers.items()],
    )
    lines = [
        f"# dataset service load ({machine})",
        "",
        f"{n:,} episodes ({steps:,} steps) in one dataset; {args.clients} clients; "
        f"{args.rounds} rounds of every scenario, each {args.duration:.0f} s after "
        f"{args.warmup:.0f} s of the same load; medians over rounds; one server process. "
        f"Load average of the machine (1 min): {load_at_start} at the start, "
        f"{harness.load_average()} at the end.",
        "",
        "## Indexing",
        indexing,
        "",
        f"## Requests ({args.clients} keep-alive clients)",
        requests,
        "",
        f"## Bulk slices (one client, {args.bulk} random episodes; every field)",
        bulk_table,
        "",
        "## A 100-step slice of a random episode into NumPy, one reader",
        slice_table,
        "",
        f"Server resident memory after the runs: {memory:.0f} MiB.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
