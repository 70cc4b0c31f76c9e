"""Shared helpers of the dataset-service tests (tests/test_server_*.py import them): test
datasets recorded with rlds_hub's recorder and written with TFDS (Open X-Embodiment style),
a real PostgreSQL server on loopback, and ``rlds-hub serve`` processes.

Datasets are made once per test session (``functools.cache``) and copied where a test
changes them.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dm_env
import httpx
import numpy as np
import pytest
from dm_env import specs

from rlds_hub.inspection import save_statistics, statistics
from rlds_hub.recorders import Recorder

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
TOKEN = "s3cret-token"
FRAME = 24  # image observations are FRAME x FRAME x 3


class FramesEnv(dm_env.Environment):
    """Image observations whose pixels encode (episode, step), a 2-d vector, and rewards
    that make episode 0's return NaN and episode 1's +inf (the rest finite)."""

    def __init__(self, lengths: tuple[int, ...] = (6, 9, 4, 7, 5)):
        self.lengths = lengths
        self.episode, self.t = -1, 0

    def _obs(self) -> dict[str, np.ndarray]:
        image = np.zeros((FRAME, FRAME, 3), np.uint8)
        image[..., 0] = self.t * 10
        image[..., 1] = self.episode * 40
        image[: self.t + 1, :, 2] = 255
        return {"image": image, "position": np.array([self.t, -self.t], np.float32)}

    def reset(self) -> dm_env.TimeStep:
        self.episode += 1
        self.t = 0
        return dm_env.restart(self._obs())

    def step(self, action: np.ndarray) -> dm_env.TimeStep:
        self.t += 1
        reward = 1.0 + 0.25 * self.t
        if self.episode == 0 and self.t == 2:
            reward = float("nan")
        if self.episode == 1 and self.t == 3:
            reward = float("inf")
        if self.t >= self.lengths[self.episode % len(self.lengths)]:
            if self.episode % 2:
                return dm_env.termination(reward, self._obs())
            return dm_env.truncation(reward, self._obs(), 0.99)
        return dm_env.transition(reward, self._obs(), 0.99)

    def observation_spec(self) -> dict[str, specs.Array]:
        return {
            "image": specs.Array((FRAME, FRAME, 3), np.uint8, name="image"),
            "position": specs.Array((2,), np.float32, name="position"),
        }

    def action_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray((1,), np.float32, -1.0, 1.0)

    def reward_spec(self) -> specs.Array:
        return specs.Array((), np.float64, name="reward")


def record_point_mass(path: Path, *, episodes: int = 10, steps: int = 30) -> Path:
    """dm_control point_mass with its expert: two splits, episode metadata (operator,
    score, success), statistics saved with the dataset."""
    from rlds_hub.envs import make_env, make_policy

    def episode_fn(timestep: dm_env.TimeStep, action: object, env: object) -> dict:
        count = episode_fn.count  # type: ignore[attr-defined]
        return {
            "operator": "alice" if count % 2 else "bob",
            "score": np.float64(count * 0.5),
            "success": np.bool_(count % 3 == 0),
        }

    episode_fn.count = 0  # type: ignore[attr-defined]
    for split, count in (("train", episodes), ("test", max(2, episodes // 4))):
        env = make_env("dm_control/point_mass-easy", seed=1)
        policy = make_policy("expert", "dm_control/point_mass-easy", env, seed=1)
        with Recorder(
            env,
            path,
            split=split,
            max_episodes_per_shard=4,
            episode_fn=episode_fn,
            env_name="dm_control/point_mass-easy",
            policy_name="expert",
            seed=1,
            metadata={"team": "robotics", "purpose": "service tests"},
            allow_env_change=True,
        ) as recorder:
            for _ in range(count):
                timestep = recorder.reset()
                policy.reset()
                for _ in range(steps):
                    timestep = recorder.step(policy(timestep))
                    if timestep.last():
                        break
                episode_fn.count += 1  # type: ignore[attr-defined]
    save_statistics(
        path, [statistics(path, "train"), statistics(path, "test")], computed_by="tests"
    )
    return path


def record_frames(path: Path) -> Path:
    env = FramesEnv()
    with Recorder(
        env, path, max_episodes_per_shard=2, env_name="tests/frames", policy_name="zeros"
    ) as recorder:
        for _ in range(len(env.lengths)):
            timestep = recorder.reset()
            while not timestep.last():
                timestep = recorder.step(np.zeros(1, np.float32))
    return path


def write_oxe(directory: Path) -> Path:
    from rlds_hub.testing import oxe_episode, write_oxe_dataset

    rng = np.random.default_rng(0)
    episodes = [oxe_episode(i, 3 + i % 4, rng, image_size=16) for i in range(6)]
    return Path(write_oxe_dataset(str(directory), episodes, name="oxe_like", shards=2))


@functools.cache
def _datasets() -> Path:
    """A root with the three test datasets (made once per session; treat as read-only)."""
    root = Path(tempfile.mkdtemp(prefix="rlds_hub_server_data_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    record_point_mass(root / "point_mass")
    record_frames(root / "frames")
    write_oxe(root / "oxe")
    return root


def dataset_root() -> Path:
    return _datasets()


def copy_root(target: Path) -> Path:
    """A writable copy of the test root (for tests that change, corrupt or delete data)."""
    shutil.copytree(
        _datasets(),
        target,
        symlinks=True,
        ignore=shutil.ignore_patterns("*.sqlite3*", ".rlds_hub.lock"),
    )
    return target


# ---- PostgreSQL -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A PostgreSQL server of Debian's package in a temporary directory, on loopback."""

    def __init__(self) -> None:
        if not PG_BIN_CANDIDATES:
            pytest.fail(
                "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin): run "
                "`bash scripts/system_deps.sh` (make test does) to install Debian's "
                "postgresql package"
            )
        self.bin = PG_BIN_CANDIDATES[0]
        self.directory = Path(tempfile.mkdtemp(prefix="rlds_hub_pg_"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode:
            log = self.directory / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(
                f"PostgreSQL would not start: {' '.join(command)} exited "
                f"{result.returncode}\n{result.stdout}\n{result.stderr}\n{tail}"
            )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)


# ---- rlds-hub serve processes ---------------------------------------------------------------


class ServerProcess:
    """``rlds-hub serve`` in a subprocess, waited for until /readyz answers 200."""

    def __init__(
        self,
        roots: list[Path],
        database_url: str,
        *,
        token: str | None = TOKEN,
        extra: tuple[str, ...] = (),
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RLDS_HUB_SERVER_")}
        if token:
            env["RLDS_HUB_SERVER_TOKEN"] = token
        command = [
            PYTHON,
            "-m",
            "rlds_hub.cli",
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
                pytest.fail(f"rlds-hub serve exited {self.process.returncode}:\n{output}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        output = self.output()
        self.stop()
        pytest.fail(f"rlds-hub serve did not become ready in {timeout} s:\n{output}")

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


@functools.cache
def postgres_server() -> PostgresServer:
    """The session's PostgreSQL server (started on first use, stopped at exit)."""
    server = PostgresServer()
    atexit.register(server.stop)
    return server


# ---- the app in-process ---------------------------------------------------------------------


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
            pytest.fail("the first scan did not finish in 120 s")
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
