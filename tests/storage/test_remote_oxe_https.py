"""An Open X-Embodiment-layout dataset (written by TFDS: JPEG and PNG cameras, language, nested
episode metadata) read over HTTP range requests from a real nginx, value for value as read
locally and as plain TFDS reads it."""

import shutil

import numpy as np
import pytest

from rlds_hub import storage
from rlds_hub.inspection import validate
from rlds_hub.storage import reader, remote, remote_shards
from rlds_hub.testing import assert_bit_equal, oxe_episode, write_oxe_dataset
from rlds_hub.testing.object_store import served_directory

EPISODES = 5
pytestmark = pytest.mark.slow  # TFDS writes the dataset (about 10 s)


@pytest.fixture(scope="module")
def oxe(nginx_server, tmp_path_factory):
    """(local directory, its URL on nginx)."""
    rng = np.random.default_rng(7)
    episodes = [oxe_episode(i, 3 + i % 3, rng) for i in range(EPISODES)]
    local = write_oxe_dataset(str(tmp_path_factory.mktemp("oxe")), episodes, shards=2)
    served = served_directory() / "oxe"
    shutil.rmtree(served, ignore_errors=True)
    shutil.copytree(local, served)
    return local, nginx_server.url_of(served)


def test_oxe_episodes_over_https_equal_local_and_plain_tfds(oxe):
    from rlds_hub.testing import read_episodes_with_tfds

    remote_shards.clear_memory_cache()
    local, url = oxe
    found = list(reader.iter_episodes(storage.open_dataset(url), "train"))
    expected = list(reader.iter_episodes(storage.open_dataset(local), "train"))
    assert len(found) == EPISODES
    for a, b in zip(expected, found, strict=True):
        assert_bit_equal(a, b)
    by_tfds = read_episodes_with_tfds(local)
    for peer, episode in zip(by_tfds, found, strict=True):
        steps = peer["steps"]
        assert [s["language_instruction"] for s in steps] == list(
            episode["steps"]["language_instruction"]
        )
        np.testing.assert_array_equal(
            np.stack([s["observation"]["image"] for s in steps]),
            episode["steps"]["observation"]["image"],
        )


def test_one_oxe_episode_is_one_range_request(oxe):
    remote_shards.clear_memory_cache()
    local, url = oxe
    dataset = storage.open_dataset(url)
    store = remote.store(url)
    assert dataset.split("train").shard_lengths[0] >= 2
    reader.read_episode(dataset, "train", 0)  # shard 0's offsets
    before = dict(store.requests.by_kind)
    episode = reader.read_episode(dataset, "train", 1)
    grown = {k: v - before.get(k, 0) for k, v in store.requests.by_kind.items()}
    assert {k: v for k, v in grown.items() if v} == {"range": 1}
    assert_bit_equal(reader.read_episode(storage.open_dataset(local), "train", 1), episode)


def test_validate_over_https(oxe):
    _, url = oxe
    report = validate(url)
    assert not report.errors, report.errors
    assert report.episodes == EPISODES and report.layout == "oxe"


@pytest.mark.parametrize("listed", [True, False])
def test_info_over_https_with_and_without_listings(oxe, nginx_server, listed):
    from rlds_hub.inspection import summarize

    local, url = oxe
    if not listed:  # a server without directory listings, as a bucket's HTTPS URL
        served = served_directory() / "unlisted" / "oxe"
        shutil.rmtree(served, ignore_errors=True)
        shutil.copytree(local, served)
        url = nginx_server.url_of(served)
        with pytest.raises(FileNotFoundError):
            remote.store(url).listdir(url)
    here, there = summarize(local), summarize(url)
    assert {k: v for k, v in there.items() if k != "path"} == {
        k: v for k, v in here.items() if k != "path"
    }
