"""The index database: the engine (SQLite by default, PostgreSQL for a shared index),
Alembic migrations shipped inside the package, and the health check.

SQLite runs in WAL mode (readers never wait for the indexer) and takes the write lock at
the start of a write transaction (``BEGIN IMMEDIATE``), so concurrent writers queue instead
of failing half way. Migrations run under a lock (an advisory lock on PostgreSQL, a file
lock next to an SQLite file), so several processes starting at once migrate exactly once.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: the PostgreSQL advisory lock that serialises migrations.
_MIGRATION_LOCK = 0x726C6473_68756221
WRITE = "rlds_hub_write"


class IndexUnavailable(RuntimeError):
    """The index database cannot be reached or is not migrated."""


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings the service needs on each backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError("the index needs an SQLite file (sqlite:///path), not :memory:")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # enough pooled connections for every worker thread (anyio's default is 40), so
        # connections are reused rather than opened and closed under load
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=48, max_overflow=16,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=24, max_overflow=24, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction (committed on success, rolled back on error)."""
    with engine.connect() as connection:
        connection.execution_options(**{WRITE: True})
        with connection.begin():
            yield connection


def alembic_config(connection: Connection | None = None) -> Any:
    """The Alembic configuration of the index (migrations inside this package)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def migrate(engine: Engine) -> None:
    """Brings the index schema to the newest revision (idempotent, safe to race)."""
    from alembic import command

    with _migration_lock(engine), engine.connect() as connection:
        command.upgrade(alembic_config(connection), "head")
        connection.commit()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": _MIGRATION_LOCK})
                connection.commit()
        return
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database:
        fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
        return
    yield


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None: not migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_ready(engine: Engine) -> None:
    """Raises ``IndexUnavailable`` unless the database answers and is fully migrated."""
    try:
        revision = current_revision(engine)
    except SQLAlchemyError as e:
        raise IndexUnavailable(f"the index database does not answer: {_reason(e)}") from e
    head = head_revision()
    if revision != head:
        raise IndexUnavailable(
            f"the index schema is at revision {revision}, the service needs {head}"
        )


def _reason(error: Exception) -> str:
    text_ = str(getattr(error, "orig", None) or error)
    return text_.strip().splitlines()[0] if text_.strip() else type(error).__name__


def describe_url(url: str) -> str:
    """The URL without its password (for logs and /readyz)."""
    return make_url(url).render_as_string(hide_password=True)
