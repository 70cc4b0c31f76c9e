"""Writes and damage: the bearer token, paths outside the roots, registering, re-indexing
and removing datasets, datasets deleted or corrupted on disk after indexing, and
re-indexing while requests are being served."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import threading
import time

import pytest

from rlds_hub.testing.service import TOKEN, app_client, auth
from rlds_hub.testing.service_data import copy_root

API = "/api/v1"


@pytest.fixture
def root(tmp_path):
    return copy_root(tmp_path / "root")


@pytest.fixture
def client(root, tmp_path):
    with app_client([root], f"sqlite:///{tmp_path}/index.sqlite3") as test_client:
        yield test_client


def names(client):
    return sorted(d["name"] for d in client.get(f"{API}/datasets").json()["items"])


def test_without_a_configured_token_writes_are_disabled(root, tmp_path):
    with app_client([root], f"sqlite:///{tmp_path}/i.sqlite3", token=None) as client:
        for method, url in (
            ("post", "/datasets"),
            ("post", "/scan"),
            ("delete", "/datasets/frames"),
            ("post", "/datasets/frames/reindex"),
        ):
            response = client.request(
                method.upper(), API + url, headers=auth(), json={"path": str(root / "frames")}
            )
            assert response.status_code == 403, (url, response.text)
            assert response.json()["error"]["code"] == "writes_disabled"
        assert "frames" in names(client)


@pytest.mark.parametrize(
    "headers,status",
    [
        ({}, 401),
        (auth("wrong"), 403),
        (auth(TOKEN + "x"), 403),
        (auth(TOKEN[:-1]), 403),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": TOKEN}, 401),
    ],
)
def test_writes_need_the_exact_bearer_token(client, headers, status):
    response = client.delete(f"{API}/datasets/frames", headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] in ("unauthorized", "forbidden")
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert "frames" in names(client)


def test_paths_outside_the_roots_are_refused(client, root, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(root / "frames", outside)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "empty").mkdir()
    for path in (
        "../outside",
        str(outside),
        "frames/../../outside",
        "escape",
        str(root / "escape"),
        "/etc",
        "",
        "frames\x00",
    ):
        response = client.post(f"{API}/datasets", json={"path": path}, headers=auth())
        assert response.status_code in (400, 422), (path, response.text)
    refused = client.post(f"{API}/datasets", json={"path": "escape"}, headers=auth()).json()
    assert refused["error"]["code"] == "path_not_allowed"
    assert "links are resolved" in refused["error"]["message"]
    empty = client.post(f"{API}/datasets", json={"path": "empty"}, headers=auth()).json()
    assert empty["error"]["code"] == "not_a_dataset"
    report = client.post(f"{API}/scan", headers=auth()).json()
    assert all(str(outside) not in o["path"] for o in report["outcomes"])
    assert names(client) == ["frames", "oxe:oxe_like:1.0.0", "point_mass"]


def test_remove_then_scan_keeps_it_out_until_registered_again(client, root):
    removed = client.delete(f"{API}/datasets/point_mass", headers=auth())
    assert removed.json() == {
        "name": "point_mass",
        "path": str(root / "point_mass"),
        "removed": True,
    }
    assert client.get(f"{API}/datasets/point_mass").status_code == 404
    assert client.get(f"{API}/datasets/point_mass/episodes").status_code == 404
    report = client.post(f"{API}/scan", headers=auth()).json()
    assert {o["name"]: o["action"] for o in report["outcomes"]}["point_mass"] == "excluded"
    assert "point_mass" not in names(client)
    (root / "team").mkdir()
    shutil.move(root / "point_mass", root / "team" / "pm")
    again = client.post(
        f"{API}/datasets", json={"path": "team/pm", "name": "pm-expert"}, headers=auth()
    )
    assert again.status_code == 201, again.text
    detail = again.json()
    assert (detail["name"], detail["registered"], detail["num_episodes"]) == ("pm-expert", True, 12)
    taken = client.post(
        f"{API}/datasets", json={"path": "frames", "name": "pm-expert"}, headers=auth()
    )
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "name_taken"
    assert client.get(f"{API}/datasets/pm-expert/episodes/3/steps").status_code == 200


def test_reindex_skips_unchanged_datasets_and_picks_up_new_episodes(client, root):
    from rlds_hub.testing import FramesEnv, record

    url = f"{API}/datasets/frames/reindex"
    assert client.post(url, headers=auth()).json()["action"] == "unchanged"
    assert client.post(url, params={"force": True}, headers=auth()).json()["action"] == "indexed"
    generation = client.get(f"{API}/datasets/frames").json()["generation"]
    env = FramesEnv(lengths=(3,))
    record(
        env,
        root / "frames",
        episodes=2,
        policy=env.action_spec().generate_value(),
        max_episodes_per_shard=2,
        env_name="tests/frames",
    )
    report = client.post(f"{API}/scan", headers=auth()).json()
    actions = {o["name"]: o["action"] for o in report["outcomes"]}
    assert actions == {
        "frames": "indexed",
        "point_mass": "unchanged",
        "oxe:oxe_like:1.0.0": "unchanged",
    }
    detail = client.get(f"{API}/datasets/frames").json()
    assert detail["num_episodes"] == 7 and detail["generation"] == generation + 1
    assert client.get(f"{API}/datasets/frames/episodes/6").json()["length"] == 4


def test_a_corrupted_shard_fails_that_dataset_only(client, root):
    shard = sorted((root / "frames").glob("frames-train.tfrecord-*"))[1]  # episodes 2 and 3
    data = bytearray(shard.read_bytes())
    data[40] ^= 0xFF  # inside the first record: episode 2
    shard.write_bytes(bytes(data))
    response = client.get(f"{API}/datasets/frames/episodes/2/steps")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "dataset_corrupt" and shard.name in error["message"]
    assert "CRC" in error["message"]
    detail = client.get(f"{API}/datasets/frames").json()
    assert detail["status"] == "error" and shard.name in detail["error"]
    assert client.get(f"{API}/datasets/frames/episodes").status_code == 200
    assert client.get(f"{API}/datasets/frames/episodes/0/steps").status_code == 200
    assert client.get(f"{API}/datasets/frames/episodes/3/steps").status_code == 200  # same shard
    assert client.get(f"{API}/datasets/point_mass/episodes/2/steps").status_code == 200
    report = client.post(f"{API}/scan", headers=auth()).json()
    failed = [o for o in report["outcomes"] if o["action"] == "failed"]
    assert [o["name"] for o in failed] == ["frames"] and failed[0]["code"] == "dataset_unreadable"
    assert client.get(f"{API}/datasets/frames").json()["status"] == "error"


def test_a_deleted_dataset_fails_until_a_scan_drops_it(client, root):
    shutil.rmtree(root / "oxe")
    response = client.get(f"{API}/datasets/oxe:oxe_like:1.0.0/episodes/0/steps")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "dataset_missing"
    listed = {d["name"]: d["status"] for d in client.get(f"{API}/datasets").json()["items"]}
    assert listed == {"frames": "ok", "point_mass": "ok", "oxe:oxe_like:1.0.0": "missing"}
    report = client.post(f"{API}/scan", headers=auth()).json()
    assert [o["name"] for o in report["outcomes"] if o["action"] == "removed"] == [
        "oxe:oxe_like:1.0.0"
    ]
    assert client.get(f"{API}/datasets/oxe:oxe_like:1.0.0").status_code == 404
    assert client.get(f"{API}/datasets/frames/episodes/1/frames/2").status_code == 200


def test_broken_metadata_keeps_the_last_good_index_and_says_why(client, root):
    (root / "point_mass" / "dataset_info.json").write_text("{not json")
    report = client.post(f"{API}/scan", headers=auth()).json()
    failed = {o["name"]: o["error"] for o in report["outcomes"] if o["action"] == "failed"}
    assert "not valid JSON" in failed["point_mass"]
    detail = client.get(f"{API}/datasets/point_mass").json()
    assert detail["status"] == "error" and "not valid JSON" in detail["error"]
    assert client.get(f"{API}/datasets/point_mass/episodes").json()["total"] == 12
    assert client.get(f"{API}/datasets/frames").json()["status"] == "ok"


def test_reindexing_while_serving_never_shows_a_partial_index(client):
    stop = threading.Event()
    expected = client.get(f"{API}/datasets/point_mass/episodes", params={"limit": 100}).json()

    def reindex():
        while not stop.is_set():
            outcome = client.post(
                f"{API}/datasets/point_mass/reindex", params={"force": True}, headers=auth()
            )
            assert outcome.status_code == 200 and outcome.json()["action"] == "indexed"

    def read(i):
        if i % 3 == 0:
            response = client.get(
                f"{API}/datasets/point_mass/episodes/{i % 10}/steps", params={"stop": 5}
            )
            assert response.status_code == 200, response.text
            return None
        page = client.get(f"{API}/datasets/point_mass/episodes", params={"limit": 100})
        assert page.status_code == 200, page.text
        return page.json()

    writer = threading.Thread(target=reindex)
    writer.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            pages = [p for p in pool.map(read, range(150)) if p is not None]
    finally:
        stop.set()
        writer.join()
    assert pages and all(page == expected for page in pages)
    assert client.get(f"{API}/datasets/point_mass").json()["generation"] > 1


def test_register_rejects_names_and_bodies_that_do_not_fit(client, root):
    for body in (
        {"path": "frames", "name": "../x"},
        {"path": "frames", "name": "a b"},
        {"name": "frames"},
        {"path": 5},
    ):
        response = client.post(f"{API}/datasets", json=body, headers=auth())
        assert response.status_code == 422 and response.json()["error"]["code"] == (
            "invalid_request"
        )
    raw = client.post(
        f"{API}/datasets", content=b"{bad", headers={**auth(), "Content-Type": "application/json"}
    )
    assert raw.status_code == 422
    assert json.loads(raw.text)["error"]["message"]
    assert os.path.isdir(root / client.get(f"{API}/datasets/frames").json()["path"])


def test_a_scheduled_scan_indexes_new_datasets_without_a_request(root, tmp_path):
    with app_client([root], f"sqlite:///{tmp_path}/i.sqlite3", scan_interval=0.3) as client:
        shutil.copytree(root / "frames", root / "later")
        deadline = time.monotonic() + 20
        while "later" not in names(client):
            assert time.monotonic() < deadline, "the scheduled scan never indexed it"
            time.sleep(0.1)
        assert client.get(f"{API}/datasets/later/episodes").json()["total"] == 5
        assert client.get("/readyz").json()["scans"] >= 2


def test_readyz_says_what_is_not_ready(client):
    from alembic import command

    from rlds_hub.server.index import database

    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    engine = client.app_state.service.engine
    with engine.connect() as connection:
        command.downgrade(database.alembic_config(connection), "base")
        connection.commit()
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert "schema is at revision None" in not_ready.json()["problems"][0]
    assert client.get("/healthz").status_code == 200
    database.migrate(engine)
    assert client.get("/readyz").status_code == 200


def test_bulk_slices_beyond_the_byte_limit_are_refused(root, tmp_path):
    with app_client([root], f"sqlite:///{tmp_path}/i.sqlite3", max_bulk_bytes=2000) as client:
        url = f"{API}/datasets/frames/episodes/1/steps"
        refused = client.get(url, params={"format": "arrow"})
        assert refused.status_code == 413 and refused.json()["error"]["code"] == "slice_too_large"
        assert "limit of 2,000" in refused.json()["error"]["message"]
        small = client.get(url, params={"format": "arrow", "fields": "reward", "stop": 5})
        assert small.status_code == 200


def test_repeated_pages_are_answered_from_kept_responses_until_the_index_changes(
    client, root, monkeypatch
):
    from rlds_hub.server.api.routes import episodes as episodes_route
    from rlds_hub.testing import FramesEnv, record

    handled = []
    pagination = episodes_route.Pagination
    monkeypatch.setattr(
        episodes_route, "Pagination", lambda *a: handled.append(a) or pagination(*a)
    )
    url = f"{API}/datasets/frames/episodes?order_by=-length&limit=3"
    answers = [client.get(url) for _ in range(4)]
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert len({tuple(sorted(a.headers.items())) for a in answers}) == 1
    # the first two fill the cache (the dataset's state is read on the first); then kept
    assert len(handled) == 2
    before = answers[0].json()["total"]
    # a client's mistake is never kept: answered by the route every time
    for _ in range(3):
        assert client.get(f"{API}/datasets/frames/episodes?split=nope").status_code == 404
    assert len(handled) == 5
    env = FramesEnv(lengths=(9,))
    policy = env.action_spec().generate_value()
    record(
        env,
        root / "frames",
        episodes=1,
        policy=policy,
        max_episodes_per_shard=2,
        env_name="tests/frames",
    )
    assert (
        client.post(f"{API}/datasets/frames/reindex", headers=auth()).json()["action"] == "indexed"
    )
    after = client.get(url).json()
    assert after["total"] == before + 1 and after["items"][0]["length"] == 10
