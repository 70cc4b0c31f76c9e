"""Real object-store servers on loopback for tests, docs tests and benchmarks.

- :class:`S3Server`: moto's standalone S3 server (``python -m moto.server``, the
  ``moto[server]`` package), an S3 API on ``127.0.0.1:<free port>``. Clients find it through
  ``AWS_ENDPOINT_URL`` and dummy credentials in the environment (:meth:`S3Server.environment`,
  :meth:`S3Server.activate`).
- :class:`NginxServer`: Debian's nginx serving a directory over HTTP with range requests and
  directory listings (a ``/forbidden/`` location answering 403, an ``/unlisted/`` one without
  listings), started as a non-daemon from a generated configuration in a temporary directory.
- :func:`upload_directory`: a local dataset directory copied into a bucket.

:func:`s3_server` and :func:`nginx_server` are the session's servers (started on first use,
stopped at exit); tests reach them through fixtures (``tests/storage/conftest.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from rlds_hub.testing.postgres import free_port

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/bin/nginx")
DUMMY_KEY = "rlds-hub-test-key"
DUMMY_SECRET = "rlds-hub-test-secret"
REGION = "us-east-1"


def _wait_for_port(port: int, process: subprocess.Popen, what: str, log: Path) -> None:
    """Waits until ``127.0.0.1:port`` accepts connections (or the process exits)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with status {process.returncode} before listening on port "
                f"{port}:\n{log.read_text(errors='replace')[-2000:] if log.exists() else ''}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{what} did not listen on port {port} within 30 s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class S3Server:
    """moto's S3 server on loopback (one process; buckets live in its memory).

    Args:
      authenticate: enforce request signing against moto's IAM (unknown keys get 403
        ``InvalidAccessKeyId``), for testing how clients report refused credentials.
    """

    def __init__(self, *, authenticate: bool = False) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="rlds_hub_s3_"))
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, **self.environment()}
        if authenticate:
            environment["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        log = self.directory / "server.log"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=self.directory,
            )
        _wait_for_port(self.port, self.process, "moto's S3 server", log)

    def environment(self) -> dict[str, str]:
        """The variables an S3 client (boto3, s3fs, rlds_hub) needs to reach this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": DUMMY_KEY,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
            "AWS_DEFAULT_REGION": REGION,
        }

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """This server's :meth:`environment` set in ``os.environ`` for the block."""
        with patched_environment(self.environment()):
            yield

    def client(self):  # -> botocore S3 client
        """A boto3 S3 client of this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=DUMMY_KEY,
            aws_secret_access_key=DUMMY_SECRET,
            region_name=REGION,
        )

    def create_bucket(self, name: str) -> str:
        """Creates bucket ``name`` (if new); returns ``s3://name``."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        return f"s3://{name}"

    def upload_directory(self, local: str | os.PathLike, url: str) -> str:
        """Copies the directory ``local`` to ``url`` (``s3://bucket/prefix``, bucket created if
        missing); returns ``url``."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.create_bucket(bucket)
        client = self.client()
        for path, key in _relative_files(Path(local), prefix):
            client.upload_file(str(path), bucket, key)
        return url

    def stop(self) -> None:
        _stop(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)


def _relative_files(root: Path, prefix: str) -> Iterator[tuple[Path, str]]:
    """Every regular file under ``root`` with its key under ``prefix``."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    for path in sorted(root.rglob("*")):
        if path.is_file():
            relative = path.relative_to(root).as_posix()
            yield path, f"{prefix.rstrip('/')}/{relative}" if prefix else relative


@contextlib.contextmanager
def patched_environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """``os.environ`` with ``values`` set (None: removed) for the block, then restored."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    types {{ application/json json; }}
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        autoindex on;
        location /forbidden/ {{ return 403; }}
        location /unlisted/ {{ autoindex off; }}
    }}
}}
"""


class NginxServer:
    """Debian's nginx serving ``root`` on loopback: static files with range requests and
    ETags, HTML directory listings (``autoindex``; none under ``/unlisted/``, as a bucket's
    HTTPS URL), 403 under ``/forbidden/``."""

    def __init__(self, root: str | os.PathLike) -> None:
        binary = next((c for c in NGINX_CANDIDATES if os.path.exists(c)), None)
        if binary is None:
            raise RuntimeError(
                "nginx is not installed: run `bash scripts/system_deps.sh` (make test does) to "
                "install Debian's nginx-light package"
            )
        self.root = Path(root).resolve()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.directory = Path(tempfile.mkdtemp(prefix="rlds_hub_nginx_"))
        user = "user root;" if os.geteuid() == 0 else ""
        config = self.directory / "nginx.conf"
        config.write_text(
            _NGINX_CONF.format(dir=self.directory, port=self.port, root=self.root, user=user)
        )
        log = self.directory / "error.log"
        self.process = subprocess.Popen(
            [binary, "-c", str(config), "-p", str(self.directory), "-e", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.process, "nginx", log)

    def url_of(self, local: str | os.PathLike) -> str:
        """The URL of ``local``, a path under the served root."""
        relative = Path(local).resolve().relative_to(self.root).as_posix()
        return f"{self.url}/{relative}"

    def stop(self) -> None:
        _stop(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)


def http_status(url: str) -> int:
    """The status of a GET of ``url`` (a helper for checks and tests)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


@functools.cache
def s3_server() -> S3Server:
    """The session's S3 server (started on first use, stopped at exit)."""
    server = S3Server()
    atexit.register(server.stop)
    return server


@functools.cache
def served_directory() -> Path:
    """The directory the session's nginx serves (removed at exit)."""
    directory = Path(tempfile.mkdtemp(prefix="rlds_hub_www_"))
    atexit.register(shutil.rmtree, directory, True)
    return directory


@functools.cache
def nginx_server() -> NginxServer:
    """The session's nginx, serving :func:`served_directory` (started on first use)."""
    server = NginxServer(served_directory())
    atexit.register(server.stop)
    return server
