"""The service's settings: read from RLDS_HUB_SERVER_* variables with their documented
defaults, passed on to worker processes unchanged, and refused with a clear message when
they cannot work."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from rlds_hub.server.core.config import DEFAULT_INDEX_FILE, Settings


def test_defaults_need_nothing_but_a_root(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("RLDS_HUB_SERVER_")]:
        monkeypatch.delenv(name)
    settings = Settings(roots=[tmp_path])
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path}/{DEFAULT_INDEX_FILE}"
    assert settings.token is None and settings.scan_on_start and settings.scan_interval == 0
    assert (settings.max_json_steps, settings.state_seconds, settings.worker_threads) == (
        1000,
        0.5,
        4,
    )


def test_the_environment_sets_everything_and_round_trips(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setenv("RLDS_HUB_SERVER_ROOTS", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    monkeypatch.setenv("RLDS_HUB_SERVER_TOKEN", "t0ken")
    monkeypatch.setenv("RLDS_HUB_SERVER_SCAN_INTERVAL", "30")
    monkeypatch.setenv("RLDS_HUB_SERVER_COMPUTE_STATISTICS", "false")
    monkeypatch.setenv("RLDS_HUB_SERVER_DATABASE_URL", "postgresql+psycopg://u@h/db")
    settings = Settings()
    assert settings.roots == [tmp_path / "a", tmp_path / "b"]
    assert settings.token.get_secret_value() == "t0ken"
    assert settings.scan_interval == 30 and not settings.compute_statistics
    for name in list(os.environ):
        if name.startswith("RLDS_HUB_SERVER_"):
            monkeypatch.delenv(name)
    for name, value in settings.environment().items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings


def test_unusable_settings_say_what_to_fix(tmp_path):
    with pytest.raises(ValidationError, match="is not a directory"):
        Settings(roots=[tmp_path / "missing"])
    with pytest.raises(ValueError, match="pass --root DIR"):
        Settings(roots=[]).resolved_database_url()
    with pytest.raises(ValidationError):
        Settings(roots=[tmp_path], max_json_steps=0)
    with pytest.raises(ValidationError):
        Settings(roots=[tmp_path], unknown_setting=1)
