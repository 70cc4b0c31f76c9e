"""The service over a bucket (`serve --root s3://bucket/prefix`): datasets found and indexed
from the S3 server's listings, browsable, episodes, step slices and frames read by range
requests, equal to what the same service answers over the local copy."""

import io

import numpy as np
import pytest
from PIL import Image

from rlds_hub.storage import remote, remote_shards
from rlds_hub.testing import FramesEnv, record
from rlds_hub.testing.service import app_client

# make test-fast leaves these out (the service over real S3 and nginx roots, ~4 s); make test runs them.
pytestmark = pytest.mark.slow

API = "/api/v1"


@pytest.fixture(scope="module")
def local_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    record(FramesEnv(), root / "team" / "frames", episodes=3, max_episodes_per_shard=2)
    return root


@pytest.fixture
def clients(s3, local_root, tmp_path):
    """(client over the local root, client over its copy in a bucket)."""
    url = s3.upload_directory(local_root, "s3://served/root")
    remote_shards.clear_memory_cache()
    with (
        app_client([local_root], f"sqlite:///{tmp_path}/local.sqlite3") as here,
        app_client([url], f"sqlite:///{tmp_path}/remote.sqlite3") as there,
    ):
        yield here, there


def _without_paths(body):
    return {k: v for k, v in body.items() if k not in ("path", "indexed_at", "index_seconds")}


def test_a_bucket_root_is_indexed_and_browsable(clients):
    here, there = clients
    listed = there.get(f"{API}/datasets").json()
    assert [d["name"] for d in listed["items"]] == ["team:frames"]
    assert listed["items"][0]["status"] == "ok"
    local = here.get(f"{API}/datasets/team:frames").json()
    found = there.get(f"{API}/datasets/team:frames").json()
    assert found["path"] == "team/frames"
    assert found["num_episodes"] == local["num_episodes"] == 3
    assert found["features"] == local["features"]
    assert (
        there.get(f"{API}/datasets/team:frames/episodes").json()["items"]
        == (here.get(f"{API}/datasets/team:frames/episodes").json()["items"])
    )


def test_steps_and_frames_by_range_requests(clients):
    here, there = clients
    url = f"{API}/datasets/team:frames/episodes/2/steps"
    store = remote.store("s3://served/root")
    there.get(url, params={"format": "npz"})  # the shard's offsets are known now
    before = store.requests.by_kind["get"], store.requests.by_kind["range"]
    for path, params in (
        (url, {"format": "npz", "start": 1}),
        (f"{API}/datasets/team:frames/episodes/1/frames/3", {}),
    ):
        local, found = here.get(path, params=params), there.get(path, params=params)
        assert found.status_code == 200 and found.content == local.content
    assert store.requests.by_kind["get"] == before[0]  # no whole shard read
    assert store.requests.by_kind["range"] > before[1]
    pixels = np.asarray(Image.open(io.BytesIO(found.content)))
    assert pixels.ndim == 3


def test_a_missing_bucket_or_empty_root_is_refused_at_start(s3, tmp_path):
    from rlds_hub.server import Settings

    s3.create_bucket("served")
    with pytest.raises(ValueError, match="the bucket 'no-such-bucket' does not exist"):
        Settings(roots=["s3://no-such-bucket/x"], database_url=f"sqlite:///{tmp_path}/i.db")
    with pytest.raises(ValueError, match="holds nothing"):
        Settings(roots=["s3://served/nothing-here"], database_url=f"sqlite:///{tmp_path}/i.db")


def test_an_https_root_is_indexed_and_serves_frames(nginx_server, local_root, tmp_path):
    import shutil

    from rlds_hub.testing.object_store import served_directory

    served = served_directory() / "serve-root"
    shutil.rmtree(served, ignore_errors=True)
    shutil.copytree(local_root, served)
    path = f"{API}/datasets/team:frames/episodes/1/frames/3"
    with (
        app_client([local_root], f"sqlite:///{tmp_path}/local.sqlite3") as here,
        app_client([nginx_server.url_of(served)], f"sqlite:///{tmp_path}/https.sqlite3") as there,
    ):
        assert [d["name"] for d in there.get(f"{API}/datasets").json()["items"]] == ["team:frames"]
        assert there.get(path).content == here.get(path).content
