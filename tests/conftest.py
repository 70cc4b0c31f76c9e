"""Shared pytest configuration. Fixtures shared by one folder's tests are in that folder's
``conftest.py``; the fake environments and the ``record`` helper are in ``rlds_hub.testing``."""

import os
import warnings

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message=".*DISPLAY environment variable is missing")


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on loopback, one per session (rlds_hub.testing.object_store)."""
    from rlds_hub.testing.object_store import s3_server

    return s3_server()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The session's S3 server with its endpoint and dummy credentials in the environment."""
    for key, value in s3_server.environment().items():
        monkeypatch.setenv(key, value)
    return s3_server


@pytest.fixture(scope="session")
def nginx_server():
    """Debian's nginx on loopback serving a session directory with range requests."""
    from rlds_hub.testing.object_store import nginx_server

    return nginx_server()
