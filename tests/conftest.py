"""Shared pytest configuration and the fixtures more than one test folder uses.

Shared fakes and helpers live in ``rlds_hub.testing`` (``record``, the fake environments);
each ``tests/<package>/conftest.py`` holds its package's own fixtures."""

import os
import warnings

import pytest

from rlds_hub.testing.postgres import PostgresServer, postgres_server

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message=".*DISPLAY environment variable is missing")


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """The session's PostgreSQL server on loopback (started on first use, stopped at exit);
    ``postgres.new_database()`` gives each test an empty database."""
    return postgres_server()
