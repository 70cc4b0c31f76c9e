"""Remote reads: one loader epoch from local disk, from an S3 server and from an HTTP server,
on loopback and with 20 ms of latency per request, side by side with plain TFDS.

Workload: the project's peer-measurement workload (``benchmarks.harness.StateEnv``: 17-d
float32 observations, 6-d float32 actions, 1000-step episodes), 200 episodes in shards of 10,
recorded by rlds_hub. The servers are real and on loopback, started here: moto's S3 server
and Debian's nginx (:mod:`rlds_hub.testing.object_store`); latency is added by
:class:`rlds_hub.testing.proxy.LatencyProxy`, which holds every request 20 ms before
forwarding it.

Each measurement is one epoch of ``rlds_hub.data.transitions`` (shuffled batches of 256) in a
fresh process (``harness.run_isolated``), timed from the call that opens the dataset to the
last batch — cold data: dataset metadata, record offsets and shards all fetched in it. Before
the timer, a remote row's client is started (fsspec / s3fs / aiohttp imported, a session
with one request, not counted): a once-per-process cost, reported apart (``client s``). The
decoded-column disk cache (``RLDS_HUB_COLUMN_CACHE``) is off in every row, so each row decodes
its shards (a remote dataset has no local cache to use). The child reports the requests it
sent (per epoch and per episode) and the bytes it received.

Two more rows measure the servers alone: every shard fetched whole, 16 requests in flight,
nothing decoded — what the transport can give at best, as transitions/s of the same data.

The peer: plain TFDS (``tfds.builder_from_directory(...).as_dataset``), through
``tf.io.gfile``, on the **local copy** — TensorFlow 2.21's gfile has no ``s3://`` and no
``http(s)://`` file system, and gs:// would need a GCS endpoint — with peer_read's step-level
transition pipeline and with whole episodes batched then sliced
(``benchmarks.read_throughput``'s two TFDS pipelines). The ceiling is the local epoch.

Targets: S3 on loopback >= 0.5 of local; with 20 ms latency >= 0.3 of local and >= 10x plain
TFDS; requests per epoch O(shards + episodes), never O(steps).

Run from the repository root:

    python -m benchmarks.remote_read [--rounds 3] [--episodes 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from benchmarks import harness

SHARD_EPISODES = 10
LATENCY_S = 0.020
ROWS = (
    ("local", "rlds_hub, local disk (the ceiling)"),
    ("s3", "rlds_hub, S3 server (moto) on loopback"),
    ("https", "rlds_hub, HTTP server (nginx, ranges) on loopback"),
    ("s3_latency", "rlds_hub, S3 server + 20 ms per request"),
    ("https_latency", "rlds_hub, HTTP server + 20 ms per request"),
    ("s3_fetch", "transport alone: the shards fetched from the S3 server, not decoded"),
    ("https_fetch", "transport alone: the shards fetched from the HTTP server, not decoded"),
    ("tfds_steps", "plain TFDS on the local copy, step-level pipeline (peer_read's)"),
    ("tfds_episodes", "plain TFDS on the local copy, whole episodes batched then sliced"),
)


def measure(path: str, environment: dict[str, str]) -> dict[str, Any]:
    """One epoch of shuffled transition batches from ``path``, in this (fresh) process."""
    os.environ.update(environment)
    os.environ["RLDS_HUB_COLUMN_CACHE"] = "off"
    import rlds_hub.data as data
    from rlds_hub.storage import remote

    setup = time.perf_counter()
    if remote.is_remote(path):  # the client started (imports, session), untimed: once a process
        store = remote.store(path)
        store.stat(f"{path}/dataset_info.json")
        store.requests.reset()
    start = time.perf_counter()
    loader = data.transitions(path, batch_size=256, seed=0, num_epochs=1)
    n = sum(len(b["reward"]) for b in loader)
    seconds = time.perf_counter() - start
    requests = {k: v for s in remote.all_stores() for k, v in s.requests.by_kind.items()}
    return {
        "items": n,
        "seconds": seconds,
        "client_setup_seconds": start - setup,
        "requests": sum(requests.values()),
        "by_kind": requests,
        "bytes": sum(s.requests.bytes for s in remote.all_stores()),
    }


def measure_fetch(path: str, environment: dict[str, str], transitions: int) -> dict[str, Any]:
    """The servers' side of the ceiling: every shard of ``path`` fetched whole, 16 requests
    in flight, nothing decoded; ``items`` is the transitions they hold."""
    os.environ.update(environment)
    from rlds_hub import storage
    from rlds_hub.storage import remote

    store = remote.store(path)
    store.stat(f"{path}/dataset_info.json")  # the client started, as in measure()
    shards = [p for s in storage.open_dataset(path).splits.values() for p in s.shard_paths]
    store.requests.reset()
    start = time.perf_counter()
    fetched = store.read_many([(p, None, None, None) for p in shards])
    seconds = time.perf_counter() - start
    return {
        "items": transitions,
        "seconds": seconds,
        "requests": store.requests.total,
        "bytes": sum(len(f[0]) for f in fetched if f is not None),
    }


def measure_tfds(path: str, mode: str) -> dict[str, Any]:
    """read_throughput's TFDS pipelines on ``path`` (laid out as that benchmark expects)."""
    from benchmarks import read_throughput

    root = tempfile.mkdtemp(prefix="rlds_remote_peer_")
    os.symlink(path, os.path.join(root, "envlogger_tfds"))
    return read_throughput._tfds(mode, root)


def serve(local: str) -> tuple[dict[str, tuple[str, dict[str, str]]], list[Any]]:
    """Starts the servers and proxies; returns each row's (path, environment) and what to stop."""
    import shutil

    from rlds_hub.testing.object_store import NginxServer, S3Server
    from rlds_hub.testing.proxy import LatencyProxy

    s3 = S3Server()
    url = s3.upload_directory(local, "s3://bench/remote_read")
    www = tempfile.mkdtemp(prefix="rlds_remote_www_")
    shutil.copytree(local, os.path.join(www, "remote_read"))
    nginx = NginxServer(www)
    slow_s3 = LatencyProxy(s3.port, delay_s=LATENCY_S)
    slow_nginx = LatencyProxy(nginx.port, delay_s=LATENCY_S)
    environment = s3.environment()
    rows = {
        "local": (local, {}),
        "s3": (url, environment),
        "https": (f"{nginx.url}/remote_read", {}),
        "s3_latency": (url, {**environment, "AWS_ENDPOINT_URL": slow_s3.url}),
        "https_latency": (f"{slow_nginx.url}/remote_read", {}),
    }
    return rows, [slow_s3, slow_nginx, nginx, s3]


def _rate(result: dict[str, Any]) -> float:
    return result["items"] / result["seconds"] if "items" in result else float("nan")


def report(results: dict[str, list[dict[str, Any]]], episodes: int, shards: int) -> str:
    """The Markdown table: medians, ratios to local (per round) and to plain TFDS."""
    rates = {row: [_rate(r) for r in runs] for row, runs in results.items()}
    median = {row: statistics.median(v) for row, v in rates.items()}
    peer = max(median.get("tfds_steps", 0), median.get("tfds_episodes", 0)) or float("nan")
    lines = []
    for row, what in ROWS:
        if row not in results:
            continue
        rounds = [a / b for a, b in zip(rates[row], rates["local"], strict=True)]
        runs = results[row]
        requests = runs[-1].get("requests")
        setup = statistics.median(r.get("client_setup_seconds", 0.0) for r in runs)
        lines.append(
            (
                what,
                harness.si(median[row]),
                f"{setup:.2f}" if setup else "",
                f"{statistics.median(rounds):.2f} ({', '.join(f'{x:.2f}' for x in rounds)})",
                f"{median[row] / peer:.1f}x",
                "" if requests is None or row.startswith("tfds") else requests,
                "" if requests is None or row.startswith("tfds") else f"{requests / episodes:.2f}",
            )
        )
    header = (
        "what",
        "transitions/s (median)",
        "client s",
        "/ local (rounds)",
        "x best plain TFDS",
        f"requests per epoch ({shards} shards)",
        "per episode",
    )
    return harness.table(header, lines)


def targets(results: dict[str, list[dict[str, Any]]], shards: int) -> list[str]:
    """Each target, met or not, with its numbers."""
    median = {row: statistics.median(_rate(r) for r in runs) for row, runs in results.items()}
    peer = max(median.get("tfds_steps", 0), median.get("tfds_episodes", 0))

    def to_local(row: str) -> float:  # the median of the rounds' ratios, as in the table
        return statistics.median(
            _rate(a) / _rate(b) for a, b in zip(results[row], results["local"], strict=True)
        )

    lines = []
    for row in ("s3", "https"):
        ratio = to_local(row)
        lines.append(f"{row} on loopback >= 0.5 of local: {ratio:.2f} ({_met(ratio >= 0.5)})")
    for row in ("s3_latency", "https_latency"):
        ratio, times = to_local(row), median[row] / peer if peer else float("nan")
        lines.append(f"{row} >= 0.3 of local: {ratio:.2f} ({_met(ratio >= 0.3)})")
        lines.append(f"{row} >= 10x plain TFDS: {times:.1f}x ({_met(times >= 10)})")
    for row in ("s3", "https", "s3_latency", "https_latency"):
        requests = max(r["requests"] for r in results[row])
        ok = requests <= shards + 16
        lines.append(
            f"{row} requests per epoch O(shards): {requests} for {shards} shards ({_met(ok)})"
        )
    return lines


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--root", default=None, help="where the local dataset is (made if absent)")
    parser.add_argument("--json", default=None, help="write the results here as JSON")
    args = parser.parse_args()
    root = args.root or os.path.join(tempfile.gettempdir(), f"rlds_remote_bench_{args.episodes}")
    print(harness.machine_line(("numpy", "rlds_hub", "tensorflow", "s3fs", "moto")), flush=True)
    local = harness.record_dataset(
        os.path.join(root, "rlds_hub"), args.episodes, max_episodes_per_shard=SHARD_EPISODES
    )
    shards = -(-args.episodes // SHARD_EPISODES)
    rows, servers = serve(local)
    results: dict[str, list[dict[str, Any]]] = {row: [] for row, _ in ROWS}
    try:
        for r in range(args.rounds):
            for row, _ in ROWS:
                if row.startswith("tfds"):
                    config = {"path": local, "mode": row}
                    result = harness.run_isolated("benchmarks.remote_read:measure_tfds", config)
                elif row.endswith("_fetch"):
                    path, environment = rows[row.removesuffix("_fetch")]
                    config = {
                        "path": path,
                        "environment": environment,
                        "transitions": args.episodes * (harness.EPISODE_STEPS),
                    }
                    result = harness.run_isolated("benchmarks.remote_read:measure_fetch", config)
                else:
                    path, environment = rows[row]
                    config = {"path": path, "environment": environment}
                    result = harness.run_isolated("benchmarks.remote_read:measure", config)
                if "error" in result:
                    raise SystemExit(f"{row}: {result['error']}")
                results[row].append(result)
                print(
                    f"round {r + 1} {row}: {harness.si(_rate(result))} transitions/s, "
                    f"{result.get('requests', '-')} requests, load {harness.load_average()}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for server in servers:
            (server.close if hasattr(server, "close") else server.stop)()
    print(report(results, args.episodes, shards))
    for line in targets(results, shards):
        print(line)
    print(f"load average at the end: {harness.load_average()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"machine": harness.machine(), "shards": shards, "results": results}, f, indent=1
            )


if __name__ == "__main__":
    main()
