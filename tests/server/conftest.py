"""Fixtures of the dataset service's tests. Their helpers (the app in-process, ``rlds-hub
serve`` processes, the test datasets) are in ``rlds_hub.testing.service`` and
``rlds_hub.testing.service_data``; the PostgreSQL server is the session's ``postgres``
fixture (tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty index database of each backend: SQLite in ``tmp_path``, or a new database
    on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.sqlite3'}"
    return request.getfixturevalue("postgres").new_database()
