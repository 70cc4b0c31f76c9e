"""rlds_hub.data.columns: the loaders' cache of decoded columns gives the batches decoding
gives, is built once, and a stale, corrupt or unwritable cache never changes a batch."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from dm_env import specs

from rlds_hub import data
from rlds_hub.data import chunks, columns
from rlds_hub.data import joined as joined_module
from rlds_hub.storage import shards
from rlds_hub.storage.dataset import open_dataset
from rlds_hub.storage.reader import EpisodeDecodeError
from rlds_hub.testing import CounterEnv, record
from rlds_hub.testing.service_data import record_frames

LENGTHS = [5, 1, 9, 3, 7, 4, 2, 6]


def _env(reward_scale: float = 1.0) -> CounterEnv:
    return CounterEnv(
        LENGTHS,
        terminate=[i % 3 == 0 for i in range(len(LENGTHS))],
        observation=lambda e, t: {"x": np.full(3, 100.0 * e + t, np.float32)},
        observation_spec={"x": specs.Array((3,), np.float32)},
        reward=lambda e, t: reward_scale * (0.5 * t + e),
        discount=0.9,
        action_spec=specs.Array((2,), np.int32),
    )


def _record(path: Path, reward_scale: float = 1.0) -> str:
    env = _env(reward_scale)
    record(
        env,
        path,
        episodes=len(LENGTHS),
        policy=lambda ts: np.array([env.t, env.episode], np.int32),
        max_episodes_per_shard=3,
    )
    return str(path)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(columns.CACHE_ENV, str(root))
    monkeypatch.setenv(columns.MIN_BYTES_ENV, "0")
    monkeypatch.setattr(columns, "_MAPPED_BYTES", 0)  # every joined column memory-mapped
    return root


@pytest.fixture
def dataset(tmp_path) -> str:
    return _record(tmp_path / "steps")


LOADERS = {
    "transitions": lambda p: data.transitions(p, batch_size=7, seed=1, num_epochs=2),
    "n_step": lambda p: data.transitions(p, batch_size=5, n_step=3, gamma=0.9, seed=2),
    "windows": lambda p: data.windows(p, size=4, shift=2, batch_size=3, seed=3),
    "steps": lambda p: data.steps(p, history=2, action_chunk=3, batch_size=6, seed=4),
    "selection": lambda p: data.transitions(p, batch_size=4, episodes=[1, 2, 6], seed=5),
}


def _batches(loader) -> list[dict]:
    def flat(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from flat(value, f"{prefix}{key}/")
            else:
                yield f"{prefix}{key}", np.array(value)

    return [dict(flat(batch)) for batch in loader]


def _assert_same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype, key
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _entries(root: Path) -> list[Path]:
    """The shards' entries (not the split-level joined ones)."""
    return sorted(
        p for p in root.glob("*/*") if not p.name.startswith(".tmp-") and p.parent.name != "joined"
    )


def _joined(root: Path) -> list[Path]:
    return sorted(p for p in (root / "joined").glob("*/*") if not p.name.startswith(".tmp-"))


@pytest.mark.parametrize("name", LOADERS)
def test_cached_batches_equal_decoded_batches(dataset, cache, monkeypatch, name) -> None:
    cached = _batches(LOADERS[name](dataset))  # builds the cache
    again = _batches(LOADERS[name](dataset))  # reads it
    assert _entries(cache), "nothing was cached"
    monkeypatch.setenv(columns.CACHE_ENV, "off")
    decoded = _batches(LOADERS[name](dataset))
    _assert_same(cached, decoded)
    _assert_same(again, decoded)


def test_a_cached_shard_is_not_read_again(dataset, cache, monkeypatch) -> None:
    want = _batches(LOADERS["transitions"](dataset))
    assert len(_entries(cache)) == 3  # one per shard

    def no_reads(*args, **kwargs):
        raise AssertionError("a shard was read although its columns are cached")

    monkeypatch.setattr(shards, "read_records", no_reads)
    _assert_same(_batches(LOADERS["transitions"](dataset)), want)


def test_a_rewritten_shard_is_decoded_again(tmp_path, dataset, cache) -> None:
    _batches(LOADERS["transitions"](dataset))
    before = _entries(cache)
    other = _record(tmp_path / "other", reward_scale=-2.0)  # same shapes, other rewards
    theirs = open_dataset(other).split("train").shard_paths
    for path, source in zip(open_dataset(dataset).split("train").shard_paths, theirs, strict=True):
        shutil.copyfile(source, path)
    got = _batches(LOADERS["transitions"](dataset))
    after = _entries(cache)
    assert len(after) == len(before) and not set(after) & set(before)  # stale ones removed
    _assert_same(got, _batches(LOADERS["transitions"](other)))


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "manifest"])
def test_a_corrupt_entry_is_detected_and_rebuilt(dataset, cache, monkeypatch, damage) -> None:
    want = _batches(LOADERS["steps"](dataset))
    entry = _entries(cache)[0]
    if damage == "flip a byte":
        blob = bytearray((entry / columns.DATA).read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        (entry / columns.DATA).write_bytes(bytes(blob))
    elif damage == "truncate":
        blob = (entry / columns.DATA).read_bytes()
        (entry / columns.DATA).write_bytes(blob[: len(blob) // 2])
    else:
        (entry / columns.MANIFEST).write_text("{")
    _assert_same(_batches(LOADERS["steps"](dataset)), want)
    manifest = json.loads((entry / columns.MANIFEST).read_text())  # rebuilt in place
    assert (entry / columns.DATA).stat().st_size == manifest["bytes"]
    # and it is read from the rebuilt entry, not decoded
    monkeypatch.setattr(shards, "read_records", lambda *a, **k: 1 / 0)
    _assert_same(_batches(LOADERS["steps"](dataset)), want)


def test_an_unwritable_cache_warns_and_reads_anyway(dataset, cache, monkeypatch) -> None:
    cache.parent.mkdir(exist_ok=True)
    cache.write_text("a file where the cache directory should be")
    with pytest.warns(UserWarning, match="cannot write the column cache"):
        got = _batches(LOADERS["transitions"](dataset))
    monkeypatch.setenv(columns.CACHE_ENV, "off")
    _assert_same(got, _batches(LOADERS["transitions"](dataset)))


def test_images_are_not_cached(tmp_path, cache) -> None:
    path = record_frames(tmp_path / "frames")
    assert _batches(data.transitions(str(path), batch_size=2))
    assert not cache.exists() or not _entries(cache)


def test_a_bad_episode_is_reported_as_without_the_cache(dataset, cache, monkeypatch) -> None:
    shard = open_dataset(dataset).split("train").shard_paths[1]
    records = shards.read_records(shard, "tfrecord")
    records[1] = b"\x0a\x03not an example"
    shards.write_tfrecord_fd(os.open(shard, os.O_WRONLY | os.O_TRUNC), records, sync=False)
    with pytest.raises(EpisodeDecodeError) as cached:
        _batches(LOADERS["transitions"](dataset))
    assert len(_entries(cache)) == 2  # the other shards are cached
    monkeypatch.setenv(columns.CACHE_ENV, "off")
    with pytest.raises(EpisodeDecodeError) as decoded:
        _batches(LOADERS["transitions"](dataset))
    assert str(cached.value) == str(decoded.value)
    assert "episode 4" in str(cached.value)


def test_entries_of_removed_shards_are_pruned(tmp_path, dataset, cache, monkeypatch) -> None:
    gone = _record(tmp_path / "gone")
    _batches(LOADERS["transitions"](gone))
    assert len(_entries(cache)) == 3
    shutil.rmtree(gone)
    monkeypatch.setattr(columns, "_PRUNED", set())  # a new process
    _batches(LOADERS["transitions"](dataset))  # builds, and prunes the removed shards' entries
    kept = _entries(cache)
    assert len(kept) == 3
    shards_now = {json.loads((e / columns.MANIFEST).read_text())["shard"] for e in kept}
    assert shards_now == {
        os.path.realpath(p) for p in open_dataset(dataset).split("train").shard_paths
    }


def test_a_build_in_progress_is_left_alone(dataset, cache) -> None:
    _batches(LOADERS["transitions"](dataset))
    entry = _entries(cache)[0]
    shutil.rmtree(entry)  # this shard's entry is built again next time
    building = entry.parent / ".tmp-another-process"
    building.mkdir()
    crashed = entry.parent / ".tmp-a-dead-process"
    crashed.mkdir()
    os.utime(crashed, (0, 0))
    _batches(LOADERS["steps"](dataset))  # reads the shards' entries (not the joined one)
    assert entry.is_dir() and building.is_dir() and not crashed.exists()


# ---- the split-level joined columns (rlds_hub.data.joined) -----------------------------------


def test_transitions_read_the_joined_columns_only(dataset, cache, monkeypatch) -> None:
    want = _batches(LOADERS["transitions"](dataset))
    assert len(_joined(cache)) == 1

    def no_shard_entries(*args, **kwargs):
        raise AssertionError("a shard's entry was opened although the joined one exists")

    monkeypatch.setattr(columns.ColumnCache, "columns", no_shard_entries)
    monkeypatch.setattr(columns.ColumnCache, "shard_columns", no_shard_entries)
    monkeypatch.setattr(chunks.indices, "transition_indices", no_shard_entries)  # precomputed
    _assert_same(_batches(LOADERS["transitions"](dataset)), want)
    monkeypatch.undo()  # (the decoding path builds its indices)
    monkeypatch.setenv(columns.CACHE_ENV, "off")
    _assert_same(_batches(LOADERS["transitions"](dataset)), want)


@pytest.mark.parametrize("chunk", [1, 2, 32])
@pytest.mark.parametrize("shuffle", [True, False])
def test_joined_batches_equal_decoded_batches_in_any_chunking(
    dataset, cache, monkeypatch, chunk, shuffle
) -> None:
    def loader():
        return data.transitions(
            dataset,
            batch_size=3,
            seed=7,
            num_epochs=3,
            episodes_per_chunk=chunk,
            shuffle_buffer=1,
            shuffle=shuffle,
            extra_keys=["is_first"],
        )

    _batches(loader())  # builds
    joined = _batches(loader())
    assert _joined(cache)
    monkeypatch.setenv(columns.CACHE_ENV, "off")
    _assert_same(joined, _batches(loader()))


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "manifest"])
def test_a_corrupt_joined_entry_is_detected_and_rebuilt(dataset, cache, monkeypatch, damage):
    want = _batches(LOADERS["transitions"](dataset))
    (entry,) = _joined(cache)
    manifest = json.loads((entry / joined_module.MANIFEST).read_text())
    column = entry / manifest["columns"]["steps/observation/x"]["file"]
    if damage == "flip a byte":
        blob = bytearray(column.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        column.write_bytes(bytes(blob))
    elif damage == "truncate":
        column.write_bytes(column.read_bytes()[:-4])
    else:
        (entry / joined_module.MANIFEST).write_text("{")
    _assert_same(_batches(LOADERS["transitions"](dataset)), want)
    assert _joined(cache) == [entry]  # rebuilt in place
    manifest = json.loads((entry / joined_module.MANIFEST).read_text())
    assert column.stat().st_size == 4 * np.prod(manifest["columns"]["steps/observation/x"]["shape"])


def test_a_rewritten_shard_replaces_the_joined_entry(tmp_path, dataset, cache) -> None:
    _batches(LOADERS["transitions"](dataset))
    before = _joined(cache)
    other = _record(tmp_path / "other", reward_scale=-2.0)
    theirs = open_dataset(other).split("train").shard_paths
    shutil.copyfile(theirs[1], open_dataset(dataset).split("train").shard_paths[1])
    got = _batches(LOADERS["transitions"](dataset))
    after = _joined(cache)
    assert len(after) == 1 and after != before  # the stale one removed
    mixed = [b["reward"] for b in got]
    assert any((r < 0).any() for r in mixed) and any((r > 0).any() for r in mixed)


def test_joined_entries_of_removed_shards_are_pruned(tmp_path, dataset, cache, monkeypatch):
    gone = _record(tmp_path / "gone")
    _batches(LOADERS["transitions"](gone))
    assert len(_joined(cache)) == 1
    shutil.rmtree(gone)
    monkeypatch.setattr(joined_module, "_PRUNED", set())  # a new process
    _batches(LOADERS["transitions"](dataset))
    (kept,) = _joined(cache)
    shards_now = json.loads((kept / joined_module.MANIFEST).read_text())["shards"]
    assert shards_now == [
        os.path.realpath(p) for p in open_dataset(dataset).split("train").shard_paths
    ]


def test_an_unwritable_joined_directory_warns_and_reads_the_shards_entries(dataset, cache):
    want = _batches(LOADERS["steps"](dataset))  # the shards' entries only
    (cache / "joined").write_text("a file where the joined entries should be")
    with pytest.warns(UserWarning, match="cannot write the column cache"):
        got = _batches(LOADERS["transitions"](dataset))
    assert len(_entries(cache)) == 3 and want
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(columns.CACHE_ENV, "off")
        _assert_same(got, _batches(LOADERS["transitions"](dataset)))


class _CountingCrc:
    """Stands in for the ``crc32c`` module: counts the bytes of columns checksummed (not
    the shards' edges, which each open reads for the shard's identity)."""

    def __init__(self, real):
        self.real, self.bytes = real, 0

    def crc32c(self, values, *args):
        if isinstance(values, np.ndarray):
            self.bytes += values.nbytes
        return self.real.crc32c(values, *args)


@pytest.mark.parametrize("name", ["steps", "transitions"])
def test_an_entry_is_checked_once_per_process_and_file_version(
    dataset, cache, monkeypatch, name
) -> None:
    want = _batches(LOADERS[name](dataset))  # builds and checks the entries
    counting = _CountingCrc(columns.crc32c)
    monkeypatch.setattr(columns, "crc32c", counting)
    _assert_same(_batches(LOADERS[name](dataset)), want)  # a new loader, the same process
    assert counting.bytes == 0, "an entry this process checked was checked again"
    monkeypatch.setattr(columns, "_VERIFIED", set())  # as in a new process
    _assert_same(_batches(LOADERS[name](dataset)), want)
    assert counting.bytes > 0, "a new process did not check the entries"
