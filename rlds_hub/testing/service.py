"""The dataset service under test: ``rlds-hub serve`` in a subprocess (:func:`serving`) or
the app in-process (:func:`app_client`), the token they require, and strict JSON."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import httpx

from rlds_hub.testing.postgres import free_port

PYTHON = sys.executable
# The rlds-hub command of this interpreter's environment (what a user runs).
RLDS_HUB = str(Path(sys.executable).with_name("rlds-hub"))
REPO = Path(__file__).resolve().parents[2]  # the checkout: where `rlds-hub serve` runs
TOKEN = "s3cret-token"


def _fail(message: str) -> NoReturn:
    import pytest

    pytest.fail(message)


class ServerProcess:
    """``rlds-hub serve`` in a subprocess, waited for until /readyz answers 200."""

    def __init__(
        self,
        roots: list[Path],
        database_url: str,
        *,
        token: str | None = TOKEN,
        extra: tuple[str, ...] = (),
        port: int | None = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RLDS_HUB_SERVER_")}
        if token:
            env["RLDS_HUB_SERVER_TOKEN"] = token
        command = [
            RLDS_HUB,
            "serve",
            "--port",
            str(self.port),
            "--database-url",
            database_url,
            "--quiet",
            "--no-access-log",
            *extra,
        ]
        for root in roots:
            command += ["--root", str(root)]
        fd, self.log_path = tempfile.mkstemp(prefix="rlds_hub_serve_", suffix=".log")
        try:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=fd, stderr=subprocess.STDOUT
            )
        finally:
            os.close(fd)
        self._wait()

    def output(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def _wait(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.output()
                self.stop()
                _fail(f"rlds-hub serve exited {self.process.returncode}:\n{output}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        output = self.output()
        self.stop()
        _fail(f"rlds-hub serve did not become ready in {timeout} s:\n{output}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.log_path)


@contextlib.contextmanager
def serving(roots: list[Path], database_url: str, **kwargs: object) -> Iterator[ServerProcess]:
    server = ServerProcess(roots, database_url, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def app_client(roots: list[Path], database_url: str, **settings: object) -> Iterator[object]:
    """A ``TestClient`` of ``create_app`` over ``roots``, after its first scan."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from rlds_hub.server import Settings, create_app

    options = {"token": TOKEN, **settings}
    app = create_app(Settings(roots=roots, database_url=database_url, **options))
    with TestClient(app) as client:
        if not app.state.service.initial_scan_done.wait(120):
            _fail("the first scan did not finish in 120 s")
        client.app_state = app.state  # type: ignore[attr-defined]
        yield client


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def strict_json(text: str) -> object:
    """Parses JSON refusing NaN / Infinity tokens (what browsers and most parsers refuse)."""
    import json

    def refuse(token: str) -> object:
        raise ValueError(f"invalid JSON token {token}")

    return json.loads(text, parse_constant=refuse)
