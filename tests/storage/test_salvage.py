"""``validate --repair --drop-corrupt``: a corrupt shard is rewritten with every record that
can still be read, what could not is reported exactly, the original is only replaced once
the repaired shard is complete, and the metadata follows (issue 15, item 25)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from dm_env import specs

from rlds_hub.cli import main
from rlds_hub.inspection.validate import validate
from rlds_hub.storage import salvage, shards
from rlds_hub.storage.checksums import read_checksums, write_checksums
from rlds_hub.storage.dataset import open_dataset
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.episodes import episode_table
from rlds_hub.storage.repair import repair
from rlds_hub.testing import RandomSpecEnv, record

NAME = "ds"
LENGTHS = (3, 4)  # episode i: LENGTHS[i % 2] transitions; 2 episodes per shard: 2, 2, 1
NUM_EPISODES = 5


def shard(path: Path, index: int) -> Path:
    return path / f"{NAME}-train.tfrecord-{index:05d}"


@pytest.fixture(scope="module")
def _pristine(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pristine") / "dataset"
    env = RandomSpecEnv(
        {"position": specs.Array((2,), np.float64)},
        episode_lengths=LENGTHS,
        terminate=(True, False),
        seed=0,
    )
    record(env, path, episodes=NUM_EPISODES, name=NAME, max_episodes_per_shard=2)
    write_checksums(path)
    return path


@pytest.fixture
def dataset(_pristine, tmp_path) -> Path:
    path = tmp_path / "dataset"
    shutil.copytree(_pristine, path)
    return path


def offsets(path: Path) -> list[int]:
    return [offset for offset, _ in shards.iter_tfrecord(path)]


def first_positions(path: Path) -> list[float]:
    """Each episode's first observation: which recorded episodes a dataset holds."""
    from rlds_hub.storage import iter_episodes, select

    return [
        float(e["steps"]["observation"]["position"][0][0])
        for e in iter_episodes(select(open_dataset(path), "train"))
    ]


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def check_repaired(path: Path, kept: list[int], before: list[float]) -> None:
    """The dataset is valid, holds exactly episodes ``kept`` of the original, and its
    index, checksums and split sizes agree."""
    report = validate(path)
    assert report.ok, report.problems
    assert first_positions(path) == [before[i] for i in kept]
    rows = [json.loads(line) for line in (path / "episodes.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in rows] == list(range(len(kept)))
    assert [r["num_steps"] for r in rows] == [LENGTHS[i % 2] + 1 for i in kept]
    assert [r["num_steps"] for r in episode_table(str(path), "train", use_index=False)] == [
        r["num_steps"] for r in rows
    ]
    sums = read_checksums(path)["shards"]
    for name, entry in sums.items():
        assert entry["bytes"] == (path / name).stat().st_size


def test_a_flipped_data_byte_drops_exactly_that_episode(dataset, _pristine):
    before = first_positions(_pristine)
    damaged = shard(dataset, 1)
    second = offsets(damaged)[1]
    flip(damaged, second + 12 + 5)
    original = damaged.read_bytes()

    report = repair(dataset, drop_corrupt=True)
    assert report.ok, report.problems
    (dropped,) = report.dropped
    assert (dropped.split, dropped.shard, dropped.records, dropped.episodes) == (
        "train",
        damaged.name,
        [1],
        [3],
    )
    assert dropped.where.startswith(f"bytes {second}-") and "data CRC" in dropped.reason
    assert dropped.rows[0]["num_steps"] == LENGTHS[1] + 1  # its episodes.jsonl row
    check_repaired(dataset, [0, 1, 2, 4], before)
    info = json.loads((dataset / "dataset_info.json").read_text())
    assert info["splits"][0]["shardLengths"] == ["2", "1", "1"]
    # the corrupt original is kept, byte for byte, beside the report
    (work,) = (dataset / salvage.SALVAGE_DIR).iterdir()
    assert (work / f"{damaged.name}.original").read_bytes() == original
    assert json.loads((work / salvage.REPORT).read_text())["dropped"][0]["episodes"] == [3]


def test_a_corrupt_length_keeps_the_readable_records_after_it(dataset, _pristine):
    before = first_positions(_pristine)
    flip(shard(dataset, 0), 0)  # the first record's length: resync finds the second
    report = repair(dataset, drop_corrupt=True)
    assert report.ok, report.problems
    (dropped,) = report.dropped
    assert dropped.episodes == [0] and "corrupt record length" in dropped.reason
    assert dropped.where == f"bytes 0-{offsets(shard(_pristine, 0))[1]}"
    check_repaired(dataset, [1, 2, 3, 4], before)


def test_a_truncated_shard_and_a_second_damaged_shard(dataset, _pristine):
    before = first_positions(_pristine)
    cut = shard(dataset, 1)
    cut.write_bytes(cut.read_bytes()[: offsets(cut)[1] + 30])
    flip(shard(dataset, 2), 20)
    report = repair(dataset, drop_corrupt=True)
    assert report.ok, report.problems
    assert sorted(e for d in report.dropped for e in d.episodes) == [3, 4]
    check_repaired(dataset, [0, 1, 2], before)
    info = json.loads((dataset / "dataset_info.json").read_text())
    assert info["splits"][0]["shardLengths"] == ["2", "1", "0"]


def test_without_drop_corrupt_nothing_changes_and_the_option_is_named(dataset):
    flip(shard(dataset, 1), offsets(shard(dataset, 1))[1] + 17)
    snapshot = {p.name: p.read_bytes() for p in dataset.iterdir() if p.is_file()}
    report = repair(dataset)
    assert not report.ok and "--drop-corrupt" in report.problems[0]
    assert {p.name: p.read_bytes() for p in dataset.iterdir() if p.is_file()} == snapshot


def test_a_crash_before_the_journal_leaves_the_original_untouched(dataset, monkeypatch):
    damaged = shard(dataset, 1)
    flip(damaged, offsets(damaged)[1] + 17)
    snapshot = {p.name: p.read_bytes() for p in dataset.iterdir() if p.is_file()}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(salvage, "_new_rows", crash)  # after the repaired shard is written
    with pytest.raises(KeyboardInterrupt):
        repair(dataset, drop_corrupt=True)
    assert {
        p.name: p.read_bytes() for p in dataset.iterdir() if p.is_file() and p.name != ".lock"
    } == {k: v for k, v in snapshot.items() if k != ".lock"}
    monkeypatch.undo()
    assert repair(dataset, drop_corrupt=True).ok


@pytest.mark.parametrize("stage", ["after_rename", "after_info"])
def test_a_crash_after_the_journal_is_finished_by_the_next_repair(
    dataset, _pristine, monkeypatch, stage
):
    before = first_positions(_pristine)
    damaged = shard(dataset, 1)
    flip(damaged, offsets(damaged)[1] + 17)
    real_write = salvage.dataset_files.atomic_write

    def crashing_write(path, data, *, sync):
        if Path(path).name == "dataset_info.json" and stage == "after_rename":
            raise KeyboardInterrupt
        real_write(path, data, sync=sync)
        if Path(path).name == "dataset_info.json":
            raise KeyboardInterrupt

    monkeypatch.setattr(salvage.dataset_files, "atomic_write", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        repair(dataset, drop_corrupt=True)
    monkeypatch.undo()
    report = repair(dataset)  # no flag needed: the journal says what to finish
    assert report.ok, report.problems
    assert any("finished the interrupted salvage" in a for a in report.actions)
    check_repaired(dataset, [0, 1, 2, 4], before)


def test_the_command_line_reports_each_drop(dataset, capsys):
    flip(shard(dataset, 1), offsets(shard(dataset, 1))[1] + 17)
    assert (
        main(["validate", str(dataset), "--repair", "--drop-corrupt", "--no-tensorflow", "--quiet"])
        == 0
    )
    out = capsys.readouterr().out
    assert f"dropped: {shard(dataset, 1).name}: bytes" in out
    assert "episode(s) 3 of split 'train'" in out and "OK: " in out


def test_drop_corrupt_needs_repair(dataset, capsys):
    assert main(["validate", str(dataset), "--drop-corrupt"]) == 2
    assert "--drop-corrupt only works with --repair" in capsys.readouterr().err


def _one_shard(path: Path, file_format: str = "tfrecord") -> Path:
    env = RandomSpecEnv(
        {"position": specs.Array((2,), np.float64)},
        episode_lengths=LENGTHS,
        terminate=(True, False),
        seed=0,
    )
    record(env, path, episodes=5, name=NAME, max_episodes_per_shard=5, file_format=file_format)
    return path


def test_two_damaged_stretches_in_one_shard_say_which_episodes_they_share(tmp_path):
    path = _one_shard(tmp_path / "one")
    before = first_positions(path)
    damaged = shard(path, 0)
    starts = offsets(damaged)
    flip(damaged, starts[3])
    flip(damaged, starts[0])
    report = repair(path, drop_corrupt=True)
    assert report.ok, report.problems
    assert len(report.dropped) == 2 and salvage.episodes_lost(report.dropped) == 2
    assert all(not d.exact and d.episodes == [0, 1, 2, 3] for d in report.dropped)
    assert "2 episode(s) lost" in report.dropped[0].describe()
    assert validate(path).ok
    assert first_positions(path) == [before[1], before[2], before[4]]
    rows = [json.loads(line) for line in (path / "episodes.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in rows] == [0, 1, 2]  # rebuilt from the records


def test_an_array_record_shard_keeps_the_records_its_reader_can_read(tmp_path):
    path = _one_shard(tmp_path / "ar", "array_record")
    before = first_positions(path)
    (damaged,) = path.glob(f"{NAME}-train.array_record-*")
    flip(damaged, 300)  # inside the first record's chunk
    assert not validate(path).ok
    report = repair(path, drop_corrupt=True)
    assert report.ok, report.problems
    (dropped,) = report.dropped
    assert dropped.where == "record 0" and dropped.episodes == [0]
    assert validate(path).ok
    assert first_positions(path) == before[1:]


def test_an_interrupted_salvage_is_not_finished_over_later_writes(dataset, monkeypatch):
    damaged = shard(dataset, 1)
    flip(damaged, offsets(damaged)[1] + 17)
    real_write = salvage.dataset_files.atomic_write

    def crashing_write(path, data, *, sync):
        if Path(path).name == "dataset_info.json":
            raise KeyboardInterrupt
        real_write(path, data, sync=sync)

    monkeypatch.setattr(salvage.dataset_files, "atomic_write", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        repair(dataset, drop_corrupt=True)
    monkeypatch.undo()
    info = json.loads((dataset / "dataset_info.json").read_text())
    info["description"] = "written by someone since"
    (dataset / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="written to since; it is not finished"):
        repair(dataset)
    assert json.loads((dataset / "dataset_info.json").read_text()) == info
