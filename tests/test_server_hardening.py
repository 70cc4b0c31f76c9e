"""The service against hostile or careless clients (issue 15): kept responses never outlive
the dataset they describe, NUL bytes, bodies before authentication, client paths, the schema
saying what is accepted, headers, and the start-up messages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest_server import app_client, auth, dataset_root, postgres_server


def _sqlite(root: Path) -> str:
    return f"sqlite:///{root.parent / 'index.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.sqlite3'}"
    return postgres_server().new_database()


# ---- 15: kept responses are keyed by something never reused --------------------------------


def test_a_new_dataset_is_never_shown_with_a_removed_ones_kept_answers(
        tmp_path: Path, database: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(dataset_root() / "frames", root / "dsA")
    with app_client([root], database) as client:
        detail = client.get("/api/v1/datasets/dsA").json()
        assert detail["name"] == "dsA" and detail["num_episodes"] == 5
        assert client.get("/api/v1/datasets/dsA/episodes").json()["total"] == 5
        assert client.delete("/api/v1/datasets/dsA", headers=auth()).status_code == 200
        shutil.copytree(dataset_root() / "oxe" / "oxe_like" / "1.0.0", root / "dsB")
        assert client.post("/api/v1/scan", headers=auth()).status_code == 200
        detail = client.get("/api/v1/datasets/dsB").json()
        assert detail["name"] == "dsB", detail["name"]
        assert detail["path"].endswith("dsB") and detail["num_episodes"] == 6
        assert client.get("/api/v1/datasets/dsB/episodes").json()["total"] == 6


def test_a_dataset_dropped_by_a_scan_leaves_nothing_to_its_successor(
        tmp_path: Path, database: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(dataset_root() / "frames", root / "dsA")
    with app_client([root], database) as client:
        assert client.get("/api/v1/datasets/dsA/episodes?min_length=0").json()["total"] == 5
        assert client.get("/api/v1/datasets/dsA/episodes?limit=2").json()["total"] == 5
        shutil.rmtree(root / "dsA")
        assert client.post("/api/v1/scan", headers=auth()).json()["removed"] == 1
        shutil.copytree(dataset_root() / "oxe" / "oxe_like" / "1.0.0", root / "dsB")
        assert client.post("/api/v1/scan", headers=auth()).json()["indexed"] == 1
        for query in ("min_length=0", "limit=2"):
            page = client.get(f"/api/v1/datasets/dsB/episodes?{query}").json()
            assert page["total"] == 6, (query, page["total"])

