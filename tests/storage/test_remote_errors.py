"""Bad input against real servers: a missing bucket, no credentials, 403, a network error
mid-epoch (retried, then reported with the object and byte range), an object replaced while
it is read (an error, never mixed data). Credentials never appear in a message."""

import shutil

import pytest

from rlds_hub import storage
from rlds_hub.storage import reader, remote, remote_shards
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.testing import CounterEnv, record
from rlds_hub.testing.object_store import DUMMY_SECRET, S3Server
from rlds_hub.testing.proxy import LatencyProxy

# make test-fast leaves these out (retries with backoff against real servers, ~5 s); make test runs them.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("errors") / "counter"
    record(CounterEnv(), path, episodes=4, max_episodes_per_shard=2)
    return path


@pytest.fixture
def uploaded(s3, local_dataset, request):
    """The dataset uploaded under a prefix of its own (tests may damage it)."""
    remote_shards.clear_memory_cache()
    return s3.upload_directory(local_dataset, f"s3://errors/{request.node.name}")


def test_a_missing_bucket_is_named(s3):
    with pytest.raises(remote.RemoteError, match="the bucket 'no-such-bucket' does not exist"):
        storage.open_dataset("s3://no-such-bucket/datasets/x")


def test_a_missing_prefix_is_reported(s3, uploaded):
    with pytest.raises(DatasetError, match="does not exist"):
        storage.open_dataset(uploaded + "-absent")


def test_no_credentials(s3, uploaded, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(remote.RemoteAccessError, match="no S3 credentials found"):
        storage.open_dataset(uploaded)


def test_403_from_s3_names_the_object_and_hides_the_secret(monkeypatch):
    server = S3Server(authenticate=True)  # unknown keys are refused with 403
    try:
        for key, value in server.environment().items():
            monkeypatch.setenv(key, value)
        with pytest.raises(remote.RemoteAccessError, match="access denied") as error:
            storage.open_dataset("s3://private/datasets/x")
        assert "s3://private/datasets/x" in str(error.value)
        assert DUMMY_SECRET not in str(error.value)
    finally:
        server.stop()


def test_403_over_https_and_user_info_hidden(nginx_server):
    url = nginx_server.url.replace("://", "://someone:hunter2@") + "/forbidden/x"
    with pytest.raises(remote.RemoteAccessError, match="HTTP 403") as error:
        storage.open_dataset(url)
    assert "hunter2" not in str(error.value)


def test_network_errors_mid_epoch_are_retried(s3, s3_server, uploaded, monkeypatch):
    proxy = LatencyProxy(s3_server.port)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        dataset = storage.open_dataset(uploaded)
        # two answers cut short (no HTTP client retries those on its own): the reads are
        # tried again, with backoff, and the epoch completes
        proxy.fail_next(2, mid_answer=True)
        episodes = list(reader.iter_episodes(dataset, "train"))
        assert len(episodes) == 4
    finally:
        proxy.close()


def test_a_lasting_network_error_names_object_and_byte_range(s3, s3_server, uploaded, monkeypatch):
    proxy = LatencyProxy(s3_server.port)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setattr(remote, "BACKOFF_S", 0.01)
    try:
        dataset = storage.open_dataset(uploaded)
        reader.read_episode(dataset, "train", 0)  # the shard's offsets are known now
        start, length = remote_shards.offsets(dataset.split("train").shard_paths[0]).records[1]
        proxy.fail_next(1000, mid_answer=True)
        with pytest.raises(remote.RemoteReadError) as error:
            reader.read_episode(dataset, "train", 1)
        message = str(error.value)
        assert f"{uploaded}/counter-train.tfrecord-00000" in message
        assert f"bytes {start}-{start + length + 15}" in message
        assert f"{remote.ATTEMPTS} attempts failed" in message
    finally:
        proxy.close()


def test_an_object_replaced_while_read_is_an_error_never_mixed(s3, uploaded, local_dataset):
    dataset = storage.open_dataset(uploaded)
    reader.read_episode(dataset, "train", 0)  # offsets read with the first version
    bucket, _, prefix = uploaded.removeprefix("s3://").partition("/")
    shard = local_dataset / "counter-train.tfrecord-00000"
    doubled = shard.read_bytes() * 2  # valid framing, four records, a new ETag
    s3.client().put_object(Bucket=bucket, Key=f"{prefix}/{shard.name}", Body=doubled)
    with pytest.raises(remote.ObjectChangedError, match="changed while being read"):
        reader.read_episode(dataset, "train", 1)
    # opened again, the new version's own offsets are found: it no longer matches the listing
    with pytest.raises(DatasetError, match=r"holds 4 episodes but dataset_info\.json lists 2"):
        reader.read_episode(storage.open_dataset(uploaded), "train", 1)


def test_an_https_object_replaced_while_read(nginx_server, local_dataset):
    from rlds_hub.testing.object_store import served_directory

    served = served_directory() / "replaced"
    shutil.rmtree(served, ignore_errors=True)
    shutil.copytree(local_dataset, served)
    remote_shards.clear_memory_cache()
    dataset = storage.open_dataset(nginx_server.url_of(served))
    reader.read_episode(dataset, "train", 0)
    shard = served / "counter-train.tfrecord-00000"
    replacement = (served / "counter-train.tfrecord-00001").read_bytes()
    shard.with_suffix(".new").write_bytes(replacement + b"\0")  # a new size: a new ETag
    shard.with_suffix(".new").rename(shard)
    with pytest.raises(remote.ObjectChangedError):
        reader.read_episode(dataset, "train", 1)


def test_without_the_remote_extra_the_error_names_it(monkeypatch):
    import sys

    from rlds_hub.extras import MissingExtraError

    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if not installed
    monkeypatch.setenv("AWS_DEFAULT_REGION", "nowhere-without-s3fs")  # a store not made yet
    with pytest.raises(MissingExtraError, match=r"rlds-hub\[remote\]"):
        storage.open_dataset("s3://bucket/dataset")
