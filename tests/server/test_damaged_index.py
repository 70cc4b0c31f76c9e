"""A dataset whose directory is still there but no longer holds a dataset (its
``dataset_info.json`` lost) keeps its name, registration and last good index, marked as
damaged (409 with the reason); only a directory that is gone is dropped."""

from __future__ import annotations

import shutil

from rlds_hub.server.index import database
from rlds_hub.server.index.indexer import Indexer
from rlds_hub.server.index.models import STATUS_ERROR, STATUS_OK
from rlds_hub.testing.service import app_client, auth
from rlds_hub.testing.service_data import copy_root


def test_a_lost_dataset_info_keeps_the_registered_name_until_it_is_restored(tmp_path, database_url):
    root = copy_root(tmp_path / "root")
    frames = root / "frames"
    with app_client([root], database_url) as client:
        registered = client.post(
            "/api/v1/datasets", headers=auth(), json={"path": "frames", "name": "my_frames"}
        )
        assert registered.status_code == 201, registered.text
        episodes = client.get("/api/v1/datasets/my_frames/episodes").json()["items"]

        shutil.move(frames / "dataset_info.json", tmp_path / "dataset_info.json")
        assert client.post("/api/v1/scan", headers=auth()).status_code == 200
        detail = client.get("/api/v1/datasets/my_frames")
        assert detail.status_code == 200, detail.text
        assert detail.json()["status"] == "error"
        assert "dataset_info.json" in detail.json()["error"]
        assert "validate --repair" in detail.json()["error"]
        # the last good index is kept; what needs the files answers 409 with the reason
        assert client.get("/api/v1/datasets/my_frames/episodes").json()["items"] == episodes
        steps = client.get("/api/v1/datasets/my_frames/episodes/0/steps")
        assert steps.status_code == 409, steps.text
        assert "dataset_info.json" in steps.json()["error"]["message"]
        assert client.get("/api/v1/datasets/frames").status_code == 404

        shutil.move(tmp_path / "dataset_info.json", frames / "dataset_info.json")
        assert client.post("/api/v1/scan", headers=auth()).status_code == 200
        detail = client.get("/api/v1/datasets/my_frames")
        assert detail.status_code == 200 and detail.json()["status"] == "ok"
        assert client.get("/api/v1/datasets/my_frames/episodes/0/steps").status_code == 200
        assert client.get("/api/v1/datasets/frames").status_code == 404


def test_only_a_directory_that_is_gone_is_dropped(tmp_path, database_url):
    root = copy_root(tmp_path / "root")
    engine = database.make_engine(database_url)
    database.migrate(engine)
    try:
        indexer = Indexer(engine, [root.resolve()], compute_statistics=False)
        indexer.scan()
        (root / "oxe" / "oxe_like" / "1.0.0" / "dataset_info.json").unlink()
        shutil.rmtree(root / "frames")
        report = {o.name: o for o in indexer.scan().outcomes}
        assert report["frames"].action == "removed"
        damaged = report["oxe:oxe_like:1.0.0"]
        assert damaged.action == "failed" and damaged.code == "dataset_unreadable"
        assert "damaged dataset" in damaged.error
        with engine.connect() as connection:
            rows = {
                r.name: r
                for r in connection.exec_driver_sql(
                    "SELECT name, status, num_episodes FROM datasets"
                )
            }
        assert "frames" not in rows
        assert rows["oxe:oxe_like:1.0.0"].status == STATUS_ERROR
        assert rows["oxe:oxe_like:1.0.0"].num_episodes == 6
        assert rows["point_mass"].status == STATUS_OK
    finally:
        engine.dispose()
