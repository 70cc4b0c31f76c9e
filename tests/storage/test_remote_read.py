"""Datasets read from a real S3 server (moto's, on loopback): recorded locally, uploaded, then
opened, read, checked, summarised and loaded from the bucket, value for value as locally."""

import json

import numpy as np
import pytest

from rlds_hub import storage
from rlds_hub.inspection import statistics, summarize, validate
from rlds_hub.storage import reader, remote, remote_shards
from rlds_hub.testing import assert_bit_equal, nested_env, record

# make test-fast leaves these out (epochs against moto's S3 server, ~5 s); make test runs them.
pytestmark = pytest.mark.slow

EPISODES = 7
PER_SHARD = 2  # 4 shards


@pytest.fixture(scope="module")
def uploaded(s3_server, tmp_path_factory):
    """A nested-spec dataset recorded locally and uploaded: (local path, s3 URL)."""
    local = tmp_path_factory.mktemp("remote") / "nested"
    record(nested_env(), local, episodes=EPISODES, max_episodes_per_shard=PER_SHARD, seed=3)
    url = s3_server.upload_directory(local, "s3://reads/datasets/nested")
    return str(local), url


@pytest.fixture(autouse=True)
def fresh_caches():
    remote_shards.clear_memory_cache()
    yield
    remote_shards.clear_memory_cache()


def _requests(url: str) -> int:
    return remote.store(url).requests.total


def test_open_and_every_episode_equal_to_the_local_reading(s3, uploaded):
    local, url = uploaded
    here, there = storage.open_dataset(local), storage.open_dataset(url)
    assert there.info == here.info and there.features_json == here.features_json
    assert there.metadata == here.metadata
    assert there.split("train").shard_lengths == here.split("train").shard_lengths
    assert there.episode_rows("train") == here.episode_rows("train")
    expected = list(reader.iter_episodes(here, "train"))
    found = list(reader.iter_episodes(there, "train"))
    assert len(found) == EPISODES
    for a, b in zip(expected, found, strict=True):
        assert_bit_equal(a, b)


def test_requests_per_epoch_grow_with_shards_not_steps(s3, uploaded):
    _, url = uploaded
    dataset = storage.open_dataset(url)
    before = _requests(url)
    steps = sum(len(e["steps"]["reward"]) for e in reader.iter_episodes(dataset, "train"))
    shards = len(dataset.split("train").shard_paths)
    assert steps > 4 * shards
    assert _requests(url) - before == shards  # one GET per shard, nothing per step


def test_one_episode_is_one_ranged_get_once_offsets_are_known(s3, uploaded):
    local, url = uploaded
    dataset = storage.open_dataset(url)
    store = remote.store(url)
    reader.read_episode(dataset, "train", 0)  # finds shard 0's offsets
    before = dict(store.requests.by_kind)
    episode = reader.read_episode(dataset, "train", 1)
    after = dict(store.requests.by_kind)
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == {
        "range": 1
    }
    assert_bit_equal(reader.read_episode(storage.open_dataset(local), "train", 1), episode)


def test_offsets_cached_on_disk_by_etag(s3, s3_server, uploaded, tmp_path, monkeypatch):
    monkeypatch.setenv(remote_shards.CACHE_VARIABLE, str(tmp_path / "offsets"))
    _, url = uploaded
    shard = storage.open_dataset(url).split("train").shard_paths[0]
    store = remote.store(url)
    first = remote_shards.offsets(shard)
    remote_shards.clear_memory_cache()
    before = dict(store.requests.by_kind)
    assert remote_shards.offsets(shard) == first
    assert store.requests.by_kind["range"] == before.get("range", 0)  # no walk: from disk
    assert store.requests.by_kind["head"] == before.get("head", 0) + 1  # the ETag looked up
    assert len(list((tmp_path / "offsets").glob("*.json"))) == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the random spec's huge floats
def test_validate_info_and_stats_from_the_bucket(s3, uploaded):
    local, url = uploaded
    report, local_report = validate(url), validate(local)
    assert not report.problems, report.problems
    assert (report.episodes, report.steps) == (EPISODES, local_report.steps)
    here, there = summarize(local), summarize(url)
    for key in set(here) - {"path"}:
        assert there[key] == here[key], key
    assert json.dumps(statistics(url), sort_keys=True) == json.dumps(
        statistics(local), sort_keys=True
    )


def test_transitions_from_the_bucket(s3, uploaded):
    from rlds_hub import data

    local, url = uploaded
    kwargs = {"batch_size": 8, "shuffle": False, "num_epochs": 1}
    here = list(data.transitions(local, **kwargs))
    there = list(data.transitions(url, **kwargs))
    assert len(here) == len(there) > 0
    for a, b in zip(here, there, strict=True):
        assert_bit_equal(a, b)


def test_shuffled_transitions_from_the_bucket_shuffle_the_first_chunk_themselves(s3, uploaded):
    """Locally the first chunk is shuffled ahead from the episode index; from a bucket the
    index would be one more request the first chunk waits on, so it shuffles itself (the
    same batches either way)."""
    from rlds_hub import data

    local, url = uploaded
    here = data.transitions(local, batch_size=8, seed=2)
    there = data.transitions(url, batch_size=8, seed=2)
    a, b = list(here), list(there)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert_bit_equal(x, y)
    assert (here.chunks().orders_ahead, there.chunks().orders_ahead) == (1, 0)


@pytest.mark.slow
def test_cli_info_and_validate_on_a_bucket(s3, uploaded, capsys):
    from rlds_hub.cli import main

    _, url = uploaded
    for command in (["info", url], ["validate", url]):
        assert main(command) in (0, None)
        assert "nested" in capsys.readouterr().out


@pytest.mark.slow
def test_rlds_hub_load_from_the_bucket(s3, uploaded):
    import rlds_hub

    def episodes(path):
        return [
            [{k: v.numpy() for k, v in step.items() if k != "observation"} for step in e["steps"]]
            for e in rlds_hub.load(path).take(3)
        ]

    local, url = uploaded
    here, there = episodes(local), episodes(url)
    assert [len(e) for e in here] == [len(e) for e in there] and len(here) == 3
    for a, b in zip(here, there, strict=True):
        for step_a, step_b in zip(a, b, strict=True):
            assert_bit_equal(step_a, step_b)


def test_prefetch_reads_each_remote_shard_once_in_order(s3, uploaded):
    _, url = uploaded
    paths = list(storage.open_dataset(url).split("train").shard_paths)
    with remote_shards.Prefetch(paths, depth=2) as ahead:
        fetched = [ahead.take(p) for p in paths]
    assert [len(f) for f in fetched] == [len(remote_shards.read_object(p)) for p in paths]
    assert remote_shards.Prefetch(["/local/file"]).take("/local/file") is None


def test_prefetch_holds_a_bounded_number_of_bytes(s3, uploaded, monkeypatch):
    _, url = uploaded
    paths = list(storage.open_dataset(url).split("train").shard_paths)
    with remote_shards.Prefetch(paths, depth=8) as ahead:
        assert ahead.in_flight == 2  # before any size is known
        ahead.take(paths[0])
        assert ahead.in_flight == min(8, len(paths) - 1)
    monkeypatch.setattr(remote_shards, "PREFETCH_BYTES", 1)  # less than one shard
    with remote_shards.Prefetch(paths, depth=8) as ahead:
        ahead.take(paths[0])
        assert ahead.in_flight == 1


@pytest.mark.filterwarnings("ignore:InMemorySampler")  # JAX's x64 mode is off
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the random spec's huge floats to float32
def test_in_memory_sampler_from_the_bucket(s3, uploaded):
    import jax

    from rlds_hub.data import InMemorySampler

    local, url = uploaded
    here = InMemorySampler.from_dataset(local)
    there = InMemorySampler.from_dataset(url)
    assert there.size == here.size > 0
    for a, b in zip(jax.tree.leaves(here.items), jax.tree.leaves(there.items), strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the random spec's huge floats
def test_info_counts_stray_objects_from_one_listing(s3, uploaded):
    from rlds_hub.storage import files

    local, url = uploaded
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    stray = f"{prefix}-stray"
    s3.upload_directory(local, f"s3://{bucket}/{stray}")
    s3.client().put_object(Bucket=bucket, Key=f"{stray}/.tmp-left-over", Body=b"x" * 10)
    store = remote.store(url)
    before = dict(store.requests.by_kind)
    sizes = files.remote_sizes(f"s3://{bucket}/{stray}")
    grown = {k: v - before.get(k, 0) for k, v in store.requests.by_kind.items()}
    assert {k: v for k, v in grown.items() if v} == {"list": 1}  # sizes from the listing
    assert sizes[".tmp-left-over"] == 10
    assert summarize(f"s3://{bucket}/{stray}")["unlisted_files"] == {
        "count": 1,
        "bytes": 10,
        "names": [".tmp-left-over"],
    }
