"""The index database: the engine (SQLite by default, PostgreSQL for a shared index),
Alembic migrations shipped inside the package, and the health check.

SQLite runs in WAL mode (readers never wait for the indexer) and takes the write lock at
the start of a write transaction (``BEGIN IMMEDIATE``), so concurrent writers queue instead
of failing half way. Migrations run under a lock (an advisory lock on PostgreSQL, a file
lock next to an SQLite file), so several processes starting at once migrate exactly once.

Failures are reported without SQL text (:func:`describe_error`). Engines made with a
``statement_timeout`` stop statements that run longer (PostgreSQL's ``statement_timeout``;
on SQLite a progress handler interrupts the statement). Database errors that requests meet
are remembered for ``FAILURE_MEMORY_SECONDS`` so that readiness reports them.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, literal, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DatabaseError, DataError, IntegrityError, SQLAlchemyError

from rlds_hub.server.index.models import Base

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: the PostgreSQL advisory lock that serialises migrations.
_MIGRATION_LOCK = 0x726C6473_68756221
WRITE = "rlds_hub_write"
# How long a database error met by a request keeps /readyz at 503.
FAILURE_MEMORY_SECONDS = 10.0
_SQLITE_CHECK_EVERY = 10_000  # SQLite VM instructions between two looks at the deadline
_failures: dict[str, tuple[float, str]] = {}  # database URL -> (when, what) of the last error
_failures_lock = threading.Lock()


class IndexUnavailable(RuntimeError):
    """The index database cannot be reached or is not migrated."""


class IndexBroken(IndexUnavailable, ValueError):
    """The index cannot be opened at start-up (the message says what to do)."""


def describe_error(error: BaseException) -> str:
    """``Type: first line of the driver's message`` — never the statement's SQL text."""
    orig = getattr(error, "orig", None) or error
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0]}" if lines else type(orig).__name__


def is_timeout(error: BaseException) -> bool:
    """True for a statement stopped by the statement timeout (either database)."""
    orig = getattr(error, "orig", None) or error
    if isinstance(orig, sqlite3.OperationalError):
        return str(orig) == "interrupted"
    return getattr(orig, "sqlstate", None) == "57014"  # PostgreSQL query_canceled


def is_index_failure(error: BaseException) -> bool:
    """A database error that says the index is unwell (not a timeout, a conflict between
    writers or a value the database refused)."""
    return (
        isinstance(error, DatabaseError)
        and not is_timeout(error)
        and not isinstance(error, IntegrityError | DataError)
    )


def _key(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def recent_failure(engine: Engine) -> str | None:
    """The database error a statement on the engine's database met in the last
    ``FAILURE_MEMORY_SECONDS`` (through any engine of this process)."""
    with _failures_lock:
        entry = _failures.get(_key(engine))
    if entry is None or time.monotonic() - entry[0] > FAILURE_MEMORY_SECONDS:
        return None
    return entry[1]


def make_engine(url: str, *, statement_timeout: float | None = None) -> Engine:
    """An engine for ``url`` with the settings the service needs on each backend; with
    ``statement_timeout`` (seconds) every statement that runs longer is stopped."""
    engine = _make_engine(url, statement_timeout)
    _watch_failures(engine)
    return engine


def _make_engine(url: str, statement_timeout: float | None) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError("the index needs an SQLite file (sqlite:///path), not :memory:")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # enough pooled connections for every worker thread (anyio's default is 40), so
        # connections are reused rather than opened and closed under load
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=48,
            max_overflow=16,
        )
        _configure_sqlite(engine, statement_timeout)
        return engine
    connect_args = {}
    if statement_timeout is not None and parsed.get_backend_name() == "postgresql":
        milliseconds = max(1, math.ceil(statement_timeout * 1000))
        connect_args["options"] = f"-c statement_timeout={milliseconds}"
    return create_engine(
        url, pool_size=24, max_overflow=24, pool_pre_ping=True, connect_args=connect_args
    )


def _watch_failures(engine: Engine) -> None:
    key = _key(engine)

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        if context.is_pre_ping:  # a dropped pooled connection: the pool makes a new one
            return
        error = context.sqlalchemy_exception or context.original_exception
        if is_index_failure(error):
            with _failures_lock:
                _failures[key] = (time.monotonic(), describe_error(error))


def _configure_sqlite(engine: Engine, statement_timeout: float | None) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()
        if statement_timeout is not None:
            deadline = record.info["deadline"] = [math.inf]
            dbapi_connection.set_progress_handler(
                lambda: time.monotonic() > deadline[0], _SQLITE_CHECK_EVERY
            )

    if statement_timeout is not None:

        @event.listens_for(engine, "before_cursor_execute")
        def _start(connection: Connection, *_args: Any) -> None:
            deadline = connection.info.get("deadline")
            if deadline is not None:  # rows are fetched under the same deadline
                deadline[0] = time.monotonic() + statement_timeout

        @event.listens_for(engine, "reset")
        def _returned(_dbapi_connection: Any, record: Any, _state: Any) -> None:
            deadline = record.info.get("deadline")
            if deadline is not None:  # the rollback on return is never interrupted
                deadline[0] = math.inf

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
    """Brings the index schema to the newest revision (idempotent, safe to race), after
    checking that an SQLite index file is intact.

    Raises:
      IndexBroken: the database cannot be opened or the SQLite file is damaged (the
        message names the file and says that deleting it makes the next start rebuild it).
    """
    from alembic import command

    try:
        with _migration_lock(engine), engine.connect() as connection:
            _check_sqlite_file(connection)
            command.upgrade(alembic_config(connection), "head")
            connection.commit()
    except SQLAlchemyError as e:
        if engine.dialect.name == "sqlite" and isinstance(e, DatabaseError):
            raise _damaged(engine, describe_error(e)) from None
        raise IndexBroken(
            f"the index database {describe_url(str(engine.url))} cannot be "
            f"opened: {describe_error(e)}"
        ) from None


def _check_sqlite_file(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        return
    problems = [row[0] for row in connection.exec_driver_sql("PRAGMA quick_check(3)")]
    if problems != ["ok"]:
        raise _damaged(connection.engine, "; ".join(problems))


def _damaged(engine: Engine, reason: str) -> IndexBroken:
    path = engine.url.database
    return IndexBroken(
        f"the index file {path} is damaged ({reason}). It holds only what indexing found "
        f"under the roots: delete it (and {path}-wal, {path}-shm if present) and start "
        "again, and the first scan rebuilds it (datasets registered under other names must "
        "be registered again)"
    )


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK}
                )
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
    try:
        with engine.connect() as connection:
            for table in Base.metadata.sorted_tables:  # each table's first page
                connection.execute(select(literal(1)).select_from(table).limit(1)).all()
    except SQLAlchemyError as e:
        raise IndexUnavailable(f"the index database fails queries: {describe_error(e)}") from e
    failure = recent_failure(engine)
    if failure is not None:
        raise IndexUnavailable(
            f"a request met a database error in the last {FAILURE_MEMORY_SECONDS:g} s: {failure}"
        )


def _reason(error: Exception) -> str:
    return describe_error(error)


def describe_url(url: str) -> str:
    """The URL without its password (for logs and /readyz)."""
    return make_url(url).render_as_string(hide_password=True)
