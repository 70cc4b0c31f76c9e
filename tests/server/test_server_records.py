"""The service's single-record reads agree bit for bit with the core reader on every
episode (TFRecord and ArrayRecord shards, images, strings, nested metadata), and name the
file and byte of a damaged record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlds_hub.format.plan import flatten
from rlds_hub.server.reading.records import RecordLocator
from rlds_hub.storage import ShardError, open_dataset, read_episode
from rlds_hub.testing import FramesEnv, record
from rlds_hub.testing.service_data import copy_root, dataset_root


def assert_same(expected, got):
    assert set(expected) == set(got)
    for key, value in expected.items():
        value = np.asarray(value)
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        if value.dtype == object:
            assert got[key].tolist() == value.tolist(), key
        else:
            assert got[key].tobytes() == value.tobytes(), key


@pytest.mark.parametrize("relative", ["point_mass", "frames", "oxe/oxe_like/1.0.0"])
def test_every_episode_reads_as_the_core_reads_it(relative):
    dataset = open_dataset(dataset_root() / relative)
    locator = RecordLocator()
    for split, info in dataset.splits.items():
        for index in range(info.num_episodes):
            expected = flatten(read_episode(dataset, split, index))
            expected.pop("__index__")
            assert_same(expected, locator.read(dataset, split, index, None))
    some = locator.read(dataset, "train", 1, ["steps/reward"])
    assert list(some) == ["steps/reward"]


def test_array_record_shards_read_at_the_position(tmp_path):
    env = FramesEnv()
    record(
        env,
        tmp_path / "ar",
        episodes=5,
        policy=np.zeros(1, np.float32),
        file_format="array_record",
        max_episodes_per_shard=2,
    )
    dataset = open_dataset(tmp_path / "ar")
    locator = RecordLocator()
    for index in range(5):
        expected = flatten(read_episode(dataset, "train", index))
        expected.pop("__index__")
        assert_same(expected, locator.read(dataset, "train", index, None))


def test_damaged_records_name_the_file_and_byte(tmp_path):
    root = copy_root(tmp_path / "root")
    dataset = open_dataset(root / "frames")
    shard = Path(dataset.split("train").shard_paths[0])
    locator = RecordLocator()
    locator.read(dataset, "train", 1, None)  # offsets of the intact file cached
    data = bytearray(shard.read_bytes())
    data[20] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(
        ShardError,
        match=r"frames-train.tfrecord-00000: corrupt record data "
        r"at byte 0 \(record 0, CRC mismatch\)",
    ):
        locator.read(dataset, "train", 0, None)
    assert locator.read(dataset, "train", 1, None)  # the other record of that shard is intact
    shard.write_bytes(bytes(data[: len(data) - 7]))
    with pytest.raises(ShardError, match="truncated record"):
        locator.read(dataset, "train", 1, None)
    data[8] ^= 1  # the length's CRC
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="corrupt record length at byte 0"):
        locator.read(dataset, "train", 1, None)
