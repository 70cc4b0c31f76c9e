"""The crash-safe dataset writer: sharding, sealing, appending, and every intermediate state."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds
from dm_env import specs

from rlds_hub.format.encode import ExampleEncoder
from rlds_hub.format.features import episode_features
from rlds_hub.inspection.validate import validate
from rlds_hub.storage import dataset_files
from rlds_hub.storage.background import BackgroundFiles
from rlds_hub.storage.writer import DatasetWriter, SpecMismatchError

SPECS = dict(
    observation_spec=specs.Array((3,), np.float32),
    action_spec=specs.Array((2,), np.float32),
    reward_spec=specs.Array((), np.float64),
    discount_spec=specs.Array((), np.float64),
)


def _episode(index: int, transitions: int = 4) -> dict:
    n = transitions + 1
    rng = np.random.default_rng(index)
    action = rng.standard_normal((n, 2)).astype(np.float32)
    reward = rng.standard_normal(n)
    discount = np.ones(n)
    action[-1] = 0
    reward[-1] = 0
    discount[-1] = 0
    return {
        "steps/observation": np.full((n, 3), index, np.float32),
        "steps/action": action,
        "steps/reward": reward,
        "steps/discount": discount,
        "steps/is_first": np.arange(n) == 0,
        "steps/is_last": np.arange(n) == n - 1,
        "steps/is_terminal": np.zeros(n, bool),
    }


def _writer(path, **kwargs) -> tuple[DatasetWriter, ExampleEncoder]:
    features = episode_features(**SPECS)
    writer = DatasetWriter(path, **kwargs)
    writer.set_features(features, metadata={"note": "test"})
    return writer, ExampleEncoder(features)


def _append(writer, encoder, index):
    writer.append(encoder.encode(_episode(index)), {"num_steps": 5})


def _read_indices(path, split="train") -> list[int]:
    """The index each episode was written with (its observations hold it), in read order."""
    builder = tfds.builder_from_directory(str(path))
    return [
        int(next(iter(e["steps"].take(1)))["observation"][0].numpy())
        for e in builder.as_dataset(split=split, shuffle_files=False)
    ]


def _shard_lengths(path, split="train") -> list[int]:
    info = json.loads((path / dataset_files.DATASET_INFO).read_text())
    return next([int(n) for n in s["shardLengths"]] for s in info["splits"] if s["name"] == split)


def test_shards_by_episode_count_and_readable_while_open(tmp_path):
    writer, encoder = _writer(tmp_path / "ds", max_episodes_per_shard=3)
    for i in range(7):
        _append(writer, encoder, i)
        # Readable by plain TFDS at every moment, listing exactly the episodes so far.
        assert _read_indices(tmp_path / "ds") == list(range(i + 1))
    assert _shard_lengths(tmp_path / "ds") == [3, 3, 0, 1]  # sealed, sealed, hole, pending
    writer.close()
    assert _shard_lengths(tmp_path / "ds") == [3, 3, 1]
    assert _read_indices(tmp_path / "ds") == list(range(7))
    files = sorted(p.name for p in (tmp_path / "ds").iterdir() if "tfrecord" in p.name)
    assert files == [f"ds-train.tfrecord-0000{i}" for i in range(3)]
    assert validate(tmp_path / "ds").ok


def test_shards_by_bytes(tmp_path):
    size = len(ExampleEncoder(episode_features(**SPECS)).encode(_episode(0)))
    writer, encoder = _writer(
        tmp_path / "ds", max_episodes_per_shard=None, max_bytes_per_shard=3 * size
    )
    for i in range(8):
        _append(writer, encoder, i)
    writer.close()
    assert _shard_lengths(tmp_path / "ds") == [3, 3, 2]
    builder = tfds.builder_from_directory(str(tmp_path / "ds"))
    assert builder.info.splits["train"].num_bytes == sum(
        p.stat().st_size for p in (tmp_path / "ds").iterdir() if "tfrecord" in p.name
    )


class Crash(Exception):
    """Stands in for the process dying at a chosen point."""


@pytest.mark.parametrize("point", ["before_info", "seal_before_info", "seal_after_info"])
def test_every_intermediate_state_is_consistent(tmp_path, monkeypatch, point):
    path = tmp_path / "ds"
    writer, encoder = _writer(path, max_episodes_per_shard=3)
    for i in range(5):
        _append(writer, encoder, i)
    calls = {"n": 0}
    original_prepare = DatasetWriter._prepare_info
    original_discard = BackgroundFiles.discard

    def prepare(self):
        """The crash lands after the shard got its name, before the listing is renamed."""
        calls["n"] += 1
        publish = original_prepare(self)
        if point == "before_info" or (point == "seal_before_info" and calls["n"] == 2):

            def crash():
                raise Crash

            return crash
        return publish

    def discard(self, source):
        if point == "seal_after_info":
            raise Crash
        original_discard(self, source)

    monkeypatch.setattr(DatasetWriter, "_prepare_info", prepare)
    monkeypatch.setattr(BackgroundFiles, "discard", discard)
    with pytest.raises(Crash):
        _append(writer, encoder, 5)  # the 6th episode completes the shard and seals it
    writer._lock.release()  # the "dead" process's lock goes with it
    monkeypatch.undo()

    survivors = 5 if point == "before_info" else 6
    assert _read_indices(path) == list(range(survivors))
    assert validate(path).ok
    # Resuming cleans the leftovers and continues after the survivors.
    writer, encoder = _writer(path, max_episodes_per_shard=3)
    assert writer.num_episodes == survivors
    _append(writer, encoder, survivors)
    writer.close()
    assert _read_indices(path) == list(range(survivors + 1))
    assert not [p for p in path.iterdir() if p.name.startswith(dataset_files.TMP_PREFIX)]
    assert validate(path).ok


def test_append_to_another_split_and_reopen(tmp_path):
    writer, encoder = _writer(tmp_path / "ds")
    _append(writer, encoder, 0)
    writer.close()
    writer, encoder = _writer(tmp_path / "ds", split="test")
    _append(writer, encoder, 1)
    _append(writer, encoder, 2)
    writer.close()
    assert _read_indices(tmp_path / "ds", "train") == [0]
    assert _read_indices(tmp_path / "ds", "test") == [1, 2]
    rows = [json.loads(line) for line in (tmp_path / "ds" / dataset_files.EPISODE_INDEX).open()]
    assert [(r["split"], r["episode"]) for r in rows] == [("train", 0), ("test", 0), ("test", 1)]


def test_features_mismatch_on_append_is_refused_and_changes_nothing(tmp_path):
    writer, encoder = _writer(tmp_path / "ds")
    _append(writer, encoder, 0)
    writer.close()
    before = {p.name: p.read_bytes() for p in (tmp_path / "ds").iterdir()}
    other = dict(SPECS, observation_spec=specs.Array((4,), np.float32))
    writer = DatasetWriter(tmp_path / "ds")
    with pytest.raises(SpecMismatchError, match="does not match"):
        writer.set_features(episode_features(**other))
    writer.close()
    after = {p.name: p.read_bytes() for p in (tmp_path / "ds").iterdir()}
    assert before.keys() <= after.keys()
    assert all(before[k] == after[k] for k in before if k != dataset_files.LOCK)


def test_one_writer_at_a_time(tmp_path):
    writer, _ = _writer(tmp_path / "ds")
    with pytest.raises(dataset_files.DatasetError, match="being written by pid"):
        DatasetWriter(tmp_path / "ds")
    writer.close()
    DatasetWriter(tmp_path / "ds").close()  # free again once closed


def test_bad_directories_are_clear_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(dataset_files.DatasetError, match="not a directory"):
        DatasetWriter(tmp_path / "file")
    with pytest.raises(dataset_files.DatasetError, match="cannot create"):
        DatasetWriter(tmp_path / "file" / "ds")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(dataset_files.DatasetError, match="not empty and is not an RLDS dataset"):
        DatasetWriter(tmp_path / "busy")
    with pytest.raises(dataset_files.DatasetError, match="local directory"):
        DatasetWriter("gs://bucket/ds")
    with pytest.raises(ValueError, match="max_episodes_per_shard"):
        DatasetWriter(tmp_path / "x", max_episodes_per_shard=0)
    with pytest.raises(dataset_files.DatasetError, match="file_format"):
        DatasetWriter(tmp_path / "x", file_format="parquet")


def test_append_to_a_split_with_foreign_shard_names_is_refused(tmp_path):
    writer, encoder = _writer(tmp_path / "ds")
    _append(writer, encoder, 0)
    writer.close()
    info_path = tmp_path / "ds" / dataset_files.DATASET_INFO
    info = json.loads(info_path.read_text())
    info["splits"][0]["filepathTemplate"] = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
    info_path.write_text(json.dumps(info))
    with pytest.raises(dataset_files.DatasetError, match="cannot grow without renaming"):
        DatasetWriter(tmp_path / "ds")


def test_array_record_shards_read_with_tfds_data_source(tmp_path):
    writer, encoder = _writer(tmp_path / "ds", file_format="array_record", max_episodes_per_shard=2)
    for i in range(5):
        _append(writer, encoder, i)
        source = tfds.builder_from_directory(str(tmp_path / "ds")).as_data_source(split="train")
        assert [int(source[j]["steps"][0]["observation"][0]) for j in range(len(source))] == list(
            range(i + 1)
        )
    writer.close()
    assert _shard_lengths(tmp_path / "ds") == [2, 2, 1]
    assert validate(tmp_path / "ds").ok
