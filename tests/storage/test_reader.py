"""The one reader: random access to a single record equals the sequential read, for both
shard formats; damage is reported with the file and byte; selections read only their
shards."""

import numpy as np
import pytest
from dm_env import specs

from rlds_hub.storage import (
    ShardError,
    iter_episodes,
    iter_records,
    open_dataset,
    read_episode,
    read_record,
    select,
)
from rlds_hub.storage import shards as shard_files
from rlds_hub.testing import RandomSpecEnv, random_value
from rlds_hub.testing import record as record_episodes


def _record(path, file_format):
    env = RandomSpecEnv(
        {"x": specs.Array((3,), np.float64), "n": specs.Array((), np.int32)},
        episode_lengths=[3, 5, 2, 4],
        seed=1,
    )
    rng = np.random.default_rng(0)
    record_episodes(
        env,
        path,
        episodes=8,
        policy=lambda timestep: random_value(env.action_spec(), rng),
        max_episodes_per_shard=3,
        file_format=file_format,
    )
    return open_dataset(path)


@pytest.fixture(scope="module", params=["tfrecord", "array_record"])
def recorded(request, tmp_path_factory):
    return _record(tmp_path_factory.mktemp(request.param) / "ds", request.param)


def test_random_access_equals_the_sequential_read(recorded):
    sequential = list(iter_records(recorded, "train"))
    assert len(sequential) == 8
    for record in sequential:
        single = read_record(recorded, "train", record.index)
        assert (single.index, single.shard, single.position) == (
            record.index,
            record.shard,
            record.position,
        )
        assert bytes(single.data) == bytes(record.data)
    last = read_record(recorded, "train", -1)
    assert last.index == 7
    episodes = list(iter_episodes(recorded, "train"))
    one = read_episode(recorded, "train", 5)
    assert one["__index__"] == 5
    assert (
        one["steps"]["observation"]["x"].tobytes()
        == episodes[5]["steps"]["observation"]["x"].tobytes()
    )


def test_a_corrupt_record_is_named_by_the_random_access_read(tmp_path):
    dataset = _record(tmp_path / "ds", "tfrecord")
    shard = dataset.split("train").shard_paths[0]
    offsets = shard_files.tfrecord_offsets(shard)
    start, length = offsets[1]
    from pathlib import Path

    raw = bytearray(Path(shard).read_bytes())
    raw[start + 12 + length // 2] ^= 0xFF
    Path(shard).write_bytes(bytes(raw))
    assert bytes(read_record(dataset, "train", 0).data)  # the others still read
    with pytest.raises(ShardError, match=rf"corrupt record data at byte {start} \(record 1"):
        read_record(dataset, "train", 1)


def test_selections_read_only_their_shards(recorded, monkeypatch):
    opened = []
    original = shard_files.read_records

    def spy(path, *args, **kwargs):
        opened.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(shard_files, "read_records", spy)
    selection = select(recorded, "train", episodes=[7])
    assert [r.index for r in iter_records(selection)] == [7]
    assert opened == [recorded.split("train").nonempty_shards[-1][0]]
