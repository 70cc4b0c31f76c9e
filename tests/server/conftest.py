"""Fixtures of the dataset service's tests: the session's PostgreSQL server and an index
database of each backend. Their helpers (the app in-process, ``rlds-hub serve`` processes,
the test datasets, made once per session) are in ``rlds_hub.testing.service`` and
``rlds_hub.testing.service_data``."""

from __future__ import annotations

import pytest

from rlds_hub.testing.postgres import PostgresServer, postgres_server


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """The session's PostgreSQL server on loopback (started on first use, stopped at exit);
    ``postgres.new_database()`` gives each test an empty database."""
    return postgres_server()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty index database of each backend: SQLite in ``tmp_path``, or a new database
    on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.sqlite3'}"
    return request.getfixturevalue("postgres").new_database()
