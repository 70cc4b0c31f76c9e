"""Settings of the dataset service, read from the environment (``RLDS_HUB_SERVER_*``).

Every setting has a default, so ``rlds-hub serve --root DIR`` needs nothing else: the index
is an SQLite file inside the first root, writes are disabled, the roots are scanned on start.
``docs/server.md`` lists the variables; ``Settings(...)`` takes the same names as arguments.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "RLDS_HUB_SERVER_"
# The SQLite index file created in the first root when no database URL is given.
DEFAULT_INDEX_FILE = ".rlds_hub_index.sqlite3"


class Settings(BaseSettings):
    """The service's configuration (environment variables ``RLDS_HUB_SERVER_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    roots: Annotated[list[Path | str], NoDecode] = Field(
        default_factory=list,
        description="directories holding datasets, local or s3:// gs:// https:// prefixes "
        f"(environment: separated by {os.pathsep!r}); only paths under them are indexed or "
        "registered",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the index (e.g. postgresql+psycopg://user@host/db); "
        f"default: an SQLite file {DEFAULT_INDEX_FILE} in the first root",
    )
    token: SecretStr | None = Field(
        default=None,
        description="bearer token that allows writes (register, re-index, remove); "
        "none: writes are disabled",
    )
    scan_on_start: bool = Field(default=True, description="scan the roots when the app starts")
    scan_interval: float = Field(
        default=0.0, ge=0.0, description="seconds between background re-scans (0: never)"
    )
    compute_statistics: bool = Field(
        default=True,
        description="compute statistics while indexing when statistics.json lacks a split "
        "(reads every episode once)",
    )
    compute_checksums: bool = Field(
        default=True,
        description="compute shard CRC32C checksums while indexing when checksums.json "
        "is absent (reads every shard once)",
    )
    worker_threads: int = Field(
        default=4,
        ge=1,
        le=256,
        description="threads per process for blocking work (index queries, reading "
        "episodes); few threads leave the event loop its share of the interpreter",
    )
    max_request_bytes: int = Field(
        default=64 * 2**10,
        ge=1024,
        le=2**30,
        description="most bytes of a request body (larger ones get 413 before they are "
        "read; the API's bodies are a few kilobytes)",
    )
    query_threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="threads per process for uncached filtered episode queries and searches, "
        "apart from worker_threads: details, cached pages and reads keep being served while "
        "they are all busy",
    )
    query_queue: int = Field(
        default=64,
        ge=0,
        description="filtered queries that may wait for a query thread; "
        "beyond, 503 busy with Retry-After",
    )
    query_timeout: float = Field(
        default=5.0,
        ge=0.0,
        le=3600.0,
        description="seconds one statement of a request may run before it is stopped (503 "
        "query_timeout; PostgreSQL's statement_timeout, an interrupt on SQLite); 0: no "
        "limit. Indexing has none",
    )
    max_json_steps: int = Field(
        default=1000, ge=1, description="most steps one JSON slice returns (bulk: arrow/npz)"
    )
    max_bulk_bytes: int = Field(
        default=256 * 2**20, ge=1, description="most bytes of arrays one slice returns"
    )
    bulk_budget_bytes: int = Field(
        default=1024 * 2**20,
        ge=1,
        description="bytes of step slices in flight per process (decoded episode fields and "
        "what is being encoded); a slice that does not fit waits bulk_wait_seconds, then "
        "gets 503 busy with Retry-After. A slice larger than the budget runs alone",
    )
    bulk_wait_seconds: float = Field(
        default=2.0,
        ge=0.0,
        le=60.0,
        description="how long a step slice waits for room in bulk_budget_bytes",
    )
    max_animation_frames: int = Field(
        default=600, ge=1, description="most frames in one animation or filmstrip"
    )
    dataset_cache: int = Field(
        default=32,
        ge=1,
        description="opened datasets kept per process (least recently used go first)",
    )
    state_seconds: float = Field(
        default=0.5,
        ge=0.0,
        description="how long a process trusts what it last read of a dataset's index row: "
        "changes made through another process show after at most this long (this process's "
        "own changes at once); 0: read the index on every request",
    )
    page_cache_bytes: int = Field(
        default=64 * 2**20,
        ge=0,
        description="bytes of answers (episode pages, dataset details) kept per process, "
        "keyed by the dataset's index generation; as much again for whole responses kept "
        "in front of the app",
    )
    episode_cache_bytes: int = Field(
        default=256 * 2**20,
        ge=0,
        description="bytes of decoded episodes kept per process for steps and frames",
    )

    @field_validator("token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty token is no token (writes disabled); surrounding whitespace, which no
        client can send in a header, is refused rather than silently never matching."""
        if value is None or value.get_secret_value() == "":
            return None
        text = value.get_secret_value()
        if not text.strip():
            raise ValueError(
                "the token is only whitespace: set a real token, or none to keep writes disabled"
            )
        if text != text.strip():
            raise ValueError(
                "the token starts or ends with whitespace, which clients cannot "
                "send in an Authorization header: remove it"
            )
        return value

    @field_validator("roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):  # a ':' that starts '://' is not a separator
            value = [part for part in re.split(r":(?!//)", value) if part]
        if isinstance(value, (list, tuple)):  # local roots as paths, remote ones as URLs
            return [v if isinstance(v, Path) or "://" in str(v) else Path(v) for v in value]
        return value

    @field_validator("roots")
    @classmethod
    def _resolve_roots(cls, value: list[Path | str]) -> list[Path | str]:
        resolved: list[Path | str] = []
        for root in value:
            if isinstance(root, str):
                resolved.append(_remote_root(root))
                continue
            path = Path(root).expanduser()
            if not path.is_dir():
                raise ValueError(f"root {root} is not a directory; create it or fix the path")
            resolved.append(path.resolve())
        return resolved

    def resolved_database_url(self) -> str:
        """The index URL: ``database_url``, or the SQLite file in the first root."""
        if self.database_url:
            return self.database_url
        if not self.roots:
            raise ValueError(
                "no dataset root and no database URL: pass --root DIR (or set "
                f"{ENV_PREFIX}ROOTS), or {ENV_PREFIX}DATABASE_URL"
            )
        if isinstance(self.roots[0], str):  # a bucket holds no SQLite file: a local one
            return f"sqlite:///{remote_index_file(self.roots[0])}"
        target = self.roots[0] / DEFAULT_INDEX_FILE
        if not os.access(self.roots[0], os.W_OK):
            raise ValueError(
                f"the index cannot be created in {self.roots[0]} (not writable): set "
                f"{ENV_PREFIX}DATABASE_URL (e.g. sqlite:////var/tmp/rlds_hub.sqlite3)"
            )
        return f"sqlite:///{target}"

    def environment(self) -> dict[str, str]:
        """These settings as ``RLDS_HUB_SERVER_*`` variables (for worker processes)."""
        env = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if name == "roots":
                text = os.pathsep.join(str(p) for p in value)
            elif name == "token":
                text = self.token.get_secret_value() if self.token else ""
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            env[ENV_PREFIX + name.upper()] = text
        return env


def _remote_root(url: str) -> str:
    """A remote root, checked: a supported scheme, and something under it (a missing bucket
    or prefix is an error at start, not an empty index)."""
    from rlds_hub.storage import files, remote
    from rlds_hub.storage.dataset_files import DatasetError

    url = url.rstrip("/")
    try:
        remote.scheme_of(url)
        found = files.isdir(url)
    except DatasetError as e:  # no such bucket, no credentials, 403: said at start
        raise ValueError(f"root {url}: {e}") from None
    if not found:
        raise ValueError(f"root {url} holds nothing (no object has this prefix); fix the URL")
    return url


def remote_index_file(url: str) -> Path:
    """The local SQLite index of a remote first root: under ``$XDG_CACHE_HOME/rlds_hub`` (or
    ``~/.cache/rlds_hub``), named after the root's URL."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rlds_hub"
    cache.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache / f"index-{digest}.sqlite3"
