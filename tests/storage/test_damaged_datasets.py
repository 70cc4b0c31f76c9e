"""Damaged dataset directories lose nothing: recording into them is refused with what is
missing and how to recover, ``rlds-hub validate --repair`` rebuilds what was lost from the
shards, a deleted episode index is rebuilt, and every error names the missing piece."""

import json
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rlds_hub.cli import main
from rlds_hub.envs import make_env
from rlds_hub.inspection.validate import validate
from rlds_hub.recorders import Recorder
from rlds_hub.storage import open_dataset
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.repair import repair
from rlds_hub.testing import record

ENV = "dm_control/point_mass-easy"


def _record(
    path,
    episodes: int,
    *,
    seed: int = 0,
    policy: str = "expert",
    max_episodes_per_shard: int = 3,
    **kwargs,
) -> None:
    record(
        ENV,
        path,
        episodes=episodes,
        seed=seed,
        policy=policy,
        max_episodes_per_shard=max_episodes_per_shard,
        **kwargs,
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "base"
    _record(path, 7)
    return path


def _shards(path):
    return sorted(p.name for p in path.glob("*.tfrecord-*"))


def _fingerprint(path):
    return {
        p.name: p.read_bytes() for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
    }


def test_recording_into_a_dataset_without_dataset_info_is_refused(base, tmp_path, capsys):
    lost = tmp_path / "base"
    shutil.copytree(base, lost)
    (lost / "dataset_info.json").unlink()
    before = _fingerprint(lost)
    code = main(
        [
            "record",
            "--env",
            ENV,
            "--policy",
            "expert",
            "--episodes",
            "1",
            "--out",
            str(lost),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "dataset_info.json (the list of its splits and shards) is missing" in err
    assert "3 shard file(s)" in err and "features.json" in err
    assert f"rlds-hub validate --repair {lost}" in err
    assert _fingerprint(lost) == before  # nothing deleted, nothing overwritten


def test_recording_into_a_directory_with_only_stray_shards_is_refused(base, tmp_path):
    stray = tmp_path / "other_name"
    stray.mkdir()
    for name in _shards(base):
        shutil.copy(base / name, stray / name)
    with pytest.raises(DatasetError, match="damaged dataset"):
        _record(stray, 1)
    assert _shards(stray) == _shards(base)


def test_repair_rebuilds_dataset_info_from_the_shards(base, tmp_path):
    lost = tmp_path / "base"
    shutil.copytree(base, lost)
    original = json.loads((lost / "dataset_info.json").read_text())
    (lost / "dataset_info.json").unlink()
    with pytest.raises(DatasetError, match="validate --repair"):
        open_dataset(lost)
    result = repair(lost)
    assert result.ok, result.problems
    assert any(
        "rebuilt dataset_info.json from 3 shard file(s): 7 episodes" in a for a in result.actions
    )
    rebuilt = json.loads((lost / "dataset_info.json").read_text())
    assert rebuilt["splits"][0]["shardLengths"] == original["splits"][0]["shardLengths"]
    assert tfds.builder_from_directory(str(lost)).info.splits["train"].num_examples == 7
    assert validate(lost).ok
    _record(lost, 1)  # and recording appends again
    assert open_dataset(lost).split("train").num_episodes == 8


def test_repair_rebuilds_features_from_metadata(base, tmp_path):
    lost = tmp_path / "base"
    shutil.copytree(base, lost)
    original = json.loads((lost / "features.json").read_text())
    (lost / "features.json").unlink()
    with pytest.raises(DatasetError, match=r"no features.json .*validate --repair"):
        open_dataset(lost)
    code = main(["validate", str(lost), "--repair", "--quiet"])
    assert code == 0
    assert json.loads((lost / "features.json").read_text()) == original


def test_appending_after_the_index_was_deleted_rebuilds_it(base, tmp_path):
    copy = tmp_path / "base"
    shutil.copytree(base, copy)
    original = [json.loads(line) for line in (copy / "episodes.jsonl").read_text().splitlines()]
    (copy / "episodes.jsonl").unlink()
    _record(copy, 1, seed=5)
    rows = [json.loads(line) for line in (copy / "episodes.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in rows] == list(range(8))
    assert [r["num_steps"] for r in rows[:7]] == [r["num_steps"] for r in original]
    assert np.allclose([r["return"] for r in rows[:7]], [r["return"] for r in original], rtol=1e-12)
    assert validate(copy).ok


def test_missing_metadata_errors_say_what_is_missing(base, tmp_path):
    no_info = tmp_path / "no_info"
    shutil.copytree(base, no_info)
    (no_info / "dataset_info.json").unlink()
    with pytest.raises(DatasetError, match=r"damaged dataset: dataset_info\.json"):
        open_dataset(no_info)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"not an RLDS dataset directory .* it is empty"):
        open_dataset(empty)
    nested = tmp_path / "nested"
    shutil.copytree(base, nested / "inner")
    with pytest.raises(DatasetError, match=r"datasets inside it: .*inner"):
        open_dataset(nested)


# ---- sessions ----------------------------------------------------------------------------


def test_sessions_keep_env_policy_and_seed_and_tie_episodes_to_them(tmp_path, capsys):
    path = tmp_path / "mixed"
    _record(path, 2, seed=1, policy="expert")
    _record(path, 1, seed=2, policy="random")
    metadata = open_dataset(path).metadata
    assert [(s["env_name"], s["policy"], s["seed"]) for s in metadata["sessions"]] == [
        (ENV, "expert", 1),
        (ENV, "random", 2),
    ]
    rows = open_dataset(path).episode_index
    assert [r["session"] for r in rows] == [0, 0, 1]
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "expert  1     2" in text and "random  2     1" in text


def test_a_different_environment_is_refused_unless_asked(tmp_path):
    path = tmp_path / "pm"
    _record(path, 1)
    other = "dm_control/point_mass-hard"  # the same specs, another task
    env = make_env(other, seed=0)
    with pytest.raises(DatasetError, match=r"holds episodes of dm_control/point_mass-easy"):
        Recorder(env, path, env_name=other)
    assert open_dataset(path).split("train").num_episodes == 1
    record(env, path, episodes=1, policy=np.zeros(2), env_name=other, allow_env_change=True)
    sessions = open_dataset(path).metadata["sessions"]
    assert [s["env_name"] for s in sessions] == [ENV, other]


def test_out_of_bounds_actions_are_warned_when_recorded_and_validated(tmp_path):
    path = tmp_path / "oob"
    env = make_env(ENV, seed=0)
    with pytest.warns(UserWarning, match=r"action\(s\) outside the action spec's bounds"):
        record(env, path, episodes=1, policy=np.array([5.0, 0.0]), env_name=ENV)
    report = validate(path)
    assert report.ok
    assert any("outside the action spec's bounds [-1, 1]" in p.message for p in report.warnings)
