"""Several server processes on one PostgreSQL index: what one registers, re-indexes or removes,
the others list and serve at once (no re-scan), and reads stay whole while another process
re-indexes."""

from __future__ import annotations

import concurrent.futures
import shutil
import time

import httpx
import pytest

from rlds_hub.testing.service import auth, serving
from rlds_hub.testing.service_data import dataset_root

API = "/api/v1"
STATE_SECONDS = 0.5  # the default: how long a process trusts what it read of the index


def eventually(check, seconds=4 * STATE_SECONDS):
    """``check()`` holds within ``seconds`` (another process's changes show after at most
    ``state_seconds``)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the other server never saw the change"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_dataset_registered_through_one_server_is_listed_by_the_other(postgres, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(dataset_root() / "frames", root / "frames")
    url = postgres.new_database()
    with serving([root], url) as first, serving([root], url, token=None) as second:
        assert "serving" in first.output() and f":{first.port}/" in first.output()
        listed = httpx.get(second.url + API + "/datasets").json()
        assert [d["name"] for d in listed["items"]] == ["frames"]

        shutil.copytree(dataset_root() / "point_mass", root / "point_mass")
        registered = httpx.post(
            first.url + API + "/datasets", json={"path": "point_mass"}, headers=auth(), timeout=60
        )
        assert registered.status_code == 201, registered.text

        eventually(
            lambda: (
                [d["name"] for d in httpx.get(second.url + API + "/datasets").json()["items"]]
                == ["frames", "point_mass"]
            )
        )
        detail = httpx.get(second.url + API + "/datasets/point_mass").json()
        assert detail["registered"] and detail["num_episodes"] == 12
        steps = httpx.get(
            second.url + API + "/datasets/point_mass/episodes/3/steps",
            params={"split": "train", "stop": 4},
        )
        assert steps.status_code == 200 and len(steps.json()["fields"]["reward"]) == 4
        refused = httpx.delete(second.url + API + "/datasets/point_mass", headers=auth())
        assert refused.status_code == 403  # the second server has no token: read-only

        removed = httpx.delete(first.url + API + "/datasets/point_mass", headers=auth())
        assert removed.status_code == 200
        eventually(lambda: httpx.get(second.url + API + "/datasets/point_mass").status_code == 404)
        assert httpx.get(second.url + API + "/datasets/point_mass/episodes").status_code == 404


@pytest.mark.slow
def test_reads_stay_whole_while_another_process_reindexes(postgres, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(
        dataset_root(), root, ignore=shutil.ignore_patterns("*.sqlite3*", ".rlds_hub.lock")
    )
    url = postgres.new_database()
    with serving([root], url) as writer, serving([root], url, token=None) as reader:
        expected = httpx.get(
            reader.url + API + "/datasets/point_mass/episodes", params={"limit": 100}
        ).json()

        def reindex(_):
            response = httpx.post(
                writer.url + API + "/datasets/point_mass/reindex",
                params={"force": True},
                headers=auth(),
                timeout=60,
            )
            return response.status_code, response.json()["action"]

        def read(i):
            with httpx.Client(base_url=reader.url) as client:
                return [
                    client.get(API + "/datasets/point_mass/episodes", params={"limit": 100}).json()
                    for _ in range(25)
                ]

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            writes = pool.map(reindex, range(4))
            reads = [page for pages in pool.map(read, range(3)) for page in pages]
            assert list(writes) == [(200, "indexed")] * 4
        assert all(page == expected for page in reads)
        generation = httpx.get(reader.url + API + "/datasets/point_mass").json()["generation"]
        assert generation >= 5
