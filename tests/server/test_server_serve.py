"""``rlds-hub serve`` and ``rlds-hub index`` as processes (issue 15): slow and idle clients
are disconnected, connections are capped, a used port is said before anything else, the
start-up scan shows in /readyz, and each indexing error is printed once."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from rlds_hub.testing.service import PYTHON, REPO, serving
from rlds_hub.testing.service_data import dataset_root


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'index.sqlite3'}"


def _closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing the connection, or None if still open."""
    sock.settimeout(seconds)
    received = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return received
            received += chunk
    except (ConnectionResetError, BrokenPipeError):
        return received
    except TimeoutError:
        return None


@pytest.mark.slow
def test_slow_and_idle_clients_are_disconnected_at_the_header_deadline(tmp_path: Path) -> None:
    with serving([dataset_root()], _sqlite(tmp_path), extra=("--header-timeout", "1")) as server:
        host, port = "127.0.0.1", server.port
        idle = socket.create_connection((host, port))
        slow = socket.create_connection((host, port))
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        kept = socket.create_connection((host, port))
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        for sock in (idle, slow):
            received = _closed_within(sock, 5)
            assert received is not None, "the connection is still open after 5 s"
            assert received in (b"",) or received.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 4
        # a client that finishes its request in time is served
        assert kept.recv(4096).startswith(b"HTTP/1.1 200")
        for sock in (idle, slow, kept):
            sock.close()
        assert httpx.get(server.url + "/healthz").status_code == 200


@pytest.mark.slow
def test_connections_beyond_the_cap_are_closed_at_once(tmp_path: Path) -> None:
    extra = ("--max-connections", "4", "--header-timeout", "30")
    with serving([dataset_root()], _sqlite(tmp_path), extra=extra) as server:
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(10)]
        closed = sum(_closed_within(sock, 0.5) is not None for sock in held)
        assert closed >= 6, f"only {closed} of 10 connections were refused with a cap of 4"
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 10
        while True:  # the server notices the closed connections
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server does not serve after the flood"
            time.sleep(0.2)


def _command(*args: str) -> list[str]:
    return [PYTHON, "-m", "rlds_hub.cli", *args]


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RLDS_HUB_SERVER_")}


def test_a_used_port_is_an_error_before_serving_is_announced(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            _command(
                "serve",
                "--root",
                str(dataset_root()),
                "--port",
                str(port),
                "--database-url",
                _sqlite(tmp_path),
                "--quiet",
                "--no-scan",
            ),
            capture_output=True,
            text=True,
            cwd=REPO,
            env=_environment(),
            timeout=120,
        )
    assert result.returncode != 0
    assert "serving" not in result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_readyz_counts_the_scan_made_at_start_up(tmp_path: Path) -> None:
    with serving([dataset_root()], _sqlite(tmp_path)) as server:
        ready = httpx.get(server.url + "/readyz").json()
    assert ready["scans"] == 1, ready
    assert ready["last_scan"]["indexed"] == 3 and ready["last_scan"]["failed"] == 0


def test_each_indexing_error_is_printed_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bad").mkdir(parents=True)
    (root / "bad" / "dataset_info.json").write_text("{broken")
    result = subprocess.run(
        _command("index", "--root", str(root), "--database-url", _sqlite(tmp_path), "--quiet"),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_environment(),
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.count("cannot index") == 1, result.stderr
