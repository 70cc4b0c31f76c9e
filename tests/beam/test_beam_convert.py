"""convert: envlogger Riegeli logs, Minari datasets (HDF5 and Arrow) and D4RL-style HDF5
files to RLDS, compared value by value with what each source's own reader returns."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest

from rlds_hub.beam.job_values import Output, Run
from rlds_hub.beam.jobs.convert import convert
from rlds_hub.beam.sources import SourceFormatError
from rlds_hub.beam.staging import OutputExistsError
from rlds_hub.inspection.validate import validate
from rlds_hub.storage import iter_episodes, open_dataset
from rlds_hub.testing import NESTED_SPEC, assert_bit_equal
from rlds_hub.testing.beam_jobs import FAST, record_nested


def _episodes(path):
    return [
        {k: v for k, v in e.items() if k != "__index__"}
        for e in iter_episodes(open_dataset(path), "train")
    ]


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


# ---- envlogger --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """Two log directories written by envlogger's own Riegeli backend."""
    root = tmp_path_factory.mktemp("logs")
    record_nested(root / "a" / "run", episodes=5, per_shard=2, file_format="riegeli", seed=1)
    record_nested(
        root / "b",
        episodes=3,
        lengths=(1, 3),
        terminate=(False, True),
        per_shard=2,
        file_format="riegeli",
        seed=2,
    )
    return root


def _tfds_alignment(log_dir):
    """What TFDS's own envlogger reader (rlds_base's path) makes of a log directory."""
    import envlogger
    from tensorflow_datasets.rlds import envlogger_reader

    with envlogger.Reader(os.fspath(log_dir)) as reader:
        return list(envlogger_reader.generate_episodes(reader))


def test_convert_envlogger_matches_the_envlogger_reader_bit_for_bit(logs, tmp_path):
    out = tmp_path / "out"
    summary = convert(logs, out, run=Run(beam_args=FAST))
    assert summary["source_format"] == "envlogger"
    assert summary["splits"] == {"train": 8}
    got = _episodes(out)
    expected = _tfds_alignment(logs / "a" / "run") + _tfds_alignment(logs / "b")
    assert len(got) == len(expected)
    for ours, theirs in zip(got, expected, strict=True):
        steps = theirs.pop("steps")
        stacked = {key: _stack(value) for key, value in steps.items()}
        assert_bit_equal(stacked["observation"], ours["steps"]["observation"])
        for key in ("action", "reward", "discount", "is_first", "is_last", "is_terminal", "energy"):
            assert_bit_equal(stacked[key], ours["steps"][key], key)
        assert int(ours["episode_id"]) == int(theirs["episode_id"])
        assert _text(ours["operator"]) == _text(theirs["operator"])
        assert_bit_equal(np.float64(theirs["score"]), ours["score"])


def _stack(value):
    if isinstance(value, dict):
        return {k: _stack(v) for k, v in value.items()}
    return np.stack([np.asarray(v) for v in value])


def test_convert_envlogger_keeps_terminal_and_truncated_and_one_step_episodes(logs, tmp_path):
    out = tmp_path / "out"
    convert(logs / "b", out, run=Run(beam_args=FAST))
    episodes = _episodes(out)
    # lengths (1, 3) alternate, terminate (False, True) alternate: 1 transition -> 2 steps
    assert [len(e["steps"]["is_first"]) for e in episodes] == [2, 4, 2]
    assert [bool(e["steps"]["is_terminal"][-1]) for e in episodes] == [False, True, False]
    for e in episodes:
        assert e["steps"]["is_last"][-1] and not e["steps"]["is_last"][:-1].any()
        assert not np.any(e["steps"]["action"][-1])  # zero-filled last step
    report = validate(open_dataset(out), tensorflow=False)
    assert report.ok, report.problems


@pytest.mark.slow
def test_convert_output_loads_with_plain_tfds_and_records_provenance(logs, tmp_path):
    import tensorflow_datasets as tfds

    out = tmp_path / "out"
    convert(logs / "a", Output(out, name="robot_logs"), run=Run(beam_args=FAST))
    builder = tfds.builder_from_directory(os.fspath(out))
    episodes = list(tfds.as_numpy(builder.as_dataset(split="train")))
    ours = _episodes(out)
    assert len(episodes) == 5
    for theirs, mine in zip(episodes, ours, strict=True):
        positions = np.stack([s["observation"]["position"] for s in theirs["steps"]])
        assert_bit_equal(mine["steps"]["observation"]["position"], positions)
    meta = open_dataset(out).metadata
    provenance = meta["provenance"]
    assert provenance["job"] == "convert" and provenance["rlds_hub_version"]
    files = provenance["sources"][0]["files"]
    assert any(name.endswith("steps.riegeli") for name in files)
    assert all(set(v) == {"bytes", "crc32c"} for v in files.values())
    assert meta["layout"] == "rlds" and meta["specs"]["observation"]["kind"] == "dict"


def test_convert_refuses_an_existing_dataset_unless_overwrite(logs, tmp_path):
    out = tmp_path / "out"
    convert(logs / "b", out, run=Run(beam_args=FAST))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        convert(logs / "b", out, run=Run(beam_args=FAST))
    convert(logs / "b", Output(out, overwrite=True), run=Run(beam_args=FAST))
    assert open_dataset(out).num_episodes == 3
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="holds no dataset"):
        convert(logs / "b", Output(tmp_path / "notes", overwrite=True), run=Run(beam_args=FAST))
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_a_truncated_log_file_fails_naming_it_and_leaves_no_output(logs, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(logs / "b", broken)
    steps_files = sorted(broken.rglob("steps.riegeli"))
    data = steps_files[0].read_bytes()
    steps_files[0].write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    with pytest.raises(SourceFormatError) as error:
        convert(broken, out, run=Run(beam_args=FAST))
    assert str(broken) in str(error.value)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_detection_names_what_a_path_is_not(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceFormatError, match="neither envlogger logs"):
        convert(tmp_path / "empty", tmp_path / "out", run=Run(beam_args=FAST))
    (tmp_path / "data.csv").write_text("x")
    with pytest.raises(SourceFormatError, match="not HDF5"):
        convert(tmp_path / "data.csv", tmp_path / "out", run=Run(beam_args=FAST))


# ---- Minari -----------------------------------------------------------------------------


class NestedEnv(gym.Env):
    """Dict / Tuple observations, infos, terminations and (via TimeLimit) truncations."""

    observation_space = gym.spaces.Dict(
        {
            "position": gym.spaces.Box(-np.inf, np.inf, (2,), np.float64),
            "parts": gym.spaces.Tuple(
                (gym.spaces.Discrete(4), gym.spaces.Box(-1, 1, (3,), np.float32))
            ),
        }
    )
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {"speed": np.float64(0.0), "phase": np.int64(0)}

    def _obs(self):
        rng = self.np_random
        return {
            "position": rng.standard_normal(2),
            "parts": (int(rng.integers(4)), rng.uniform(-1, 1, 3).astype(np.float32)),
        }

    def step(self, action):
        self.t += 1
        terminated = self.t >= 3 and self.np_random.uniform() < 0.3
        info = {"speed": np.float64(self.t * 1.5), "phase": np.int64(self.t % 3)}
        return self._obs(), float(self.np_random.standard_normal()), terminated, False, info


def _minari_dataset(root: Path, data_format: str) -> Path:
    """Six episodes written by Minari's own DataCollector into ``root``."""
    from minari import DataCollector

    env_id = "RldsHubNested-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point="test_beam_convert:NestedEnv", max_episode_steps=6)
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = os.fspath(root)  # where create_dataset writes
    try:
        env = DataCollector(gym.make(env_id), record_infos=True, data_format=data_format)
        for seed in range(6):
            env.reset(seed=seed)
            done = False
            while not done:
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                done = terminated or truncated
        env.create_dataset(dataset_id=f"rldshub/nested-{data_format}-v0", algorithm_name="random")
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
    return root / "rldshub" / f"nested-{data_format}-v0"


@pytest.mark.parametrize("data_format", ["hdf5", "arrow"])
def test_convert_minari_matches_minari_bit_for_bit(tmp_path, data_format):
    from minari.dataset.minari_dataset import MinariDataset

    source = _minari_dataset(tmp_path / "minari", data_format)
    out = tmp_path / "out"
    summary = convert(source, out, run=Run(beam_args=FAST))
    assert summary["source_format"] == "minari"
    expected = list(MinariDataset(source / "data").iterate_episodes())
    got = _episodes(out)
    assert len(got) == len(expected) == 6
    kinds = set()
    for mine, theirs in zip(got, expected, strict=True):
        steps = mine["steps"]
        transitions = len(theirs.rewards)
        assert len(steps["is_first"]) == transitions + 1
        assert_bit_equal(theirs.observations["position"], steps["observation"]["position"])
        assert_bit_equal(theirs.observations["parts"][0], steps["observation"]["parts"]["0"])
        assert_bit_equal(theirs.observations["parts"][1], steps["observation"]["parts"]["1"])
        assert_bit_equal(theirs.actions, steps["action"][:-1])
        assert_bit_equal(theirs.rewards, steps["reward"][:-1])
        assert_bit_equal(theirs.infos["speed"], steps["infos"]["speed"])
        assert_bit_equal(theirs.infos["phase"], steps["infos"]["phase"])
        assert not steps["action"][-1].any() and steps["reward"][-1] == 0
        assert bool(steps["is_terminal"][-1]) == bool(theirs.terminations[-1])
        assert (steps["discount"][:-1] == np.where(theirs.terminations, 0, 1)).all()
        assert int(mine["episode_id"]) == theirs.id
        kinds.add("terminated" if theirs.terminations[-1] else "truncated")
    assert kinds == {"terminated", "truncated"}  # both endings are exercised
    assert validate(open_dataset(out), tensorflow=False).ok


def test_a_damaged_minari_dataset_fails_naming_the_episode(tmp_path):
    source = _minari_dataset(tmp_path / "minari", "arrow")
    for part in sorted((source / "data").glob("3/*.arrow")):
        part.write_bytes(b"not arrow")
    out = tmp_path / "out"
    with pytest.raises(SourceFormatError, match="episode 3"):
        convert(source, out, run=Run(beam_args=FAST))
    assert not out.exists()


# ---- D4RL-style HDF5 --------------------------------------------------------------------


def _d4rl_file(path: Path, *, next_observations: bool = True, n: int = 23) -> dict:
    rng = np.random.default_rng(0)
    columns = {
        "observations": rng.standard_normal((n, 4)),  # float64
        "actions": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        "rewards": rng.standard_normal(n).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": np.zeros(n, bool),
    }
    columns["terminals"][[4, 15]] = True
    columns["timeouts"][[9]] = True  # then an unfinished episode runs to the end of the file
    if next_observations:
        columns["next_observations"] = rng.standard_normal((n, 4))
    with h5py.File(path, "w") as f:
        for key, value in columns.items():
            f[key] = value
        f["infos/qpos"] = rng.standard_normal((n, 3))
        f.attrs["env_name"] = "hopper-medium-v2"
    return columns


def test_convert_d4rl_cuts_episodes_at_terminals_timeouts_and_the_end(tmp_path):
    source = tmp_path / "hopper.hdf5"
    c = _d4rl_file(source)
    out = tmp_path / "out"
    convert(source, out, run=Run(beam_args=FAST))
    episodes = _episodes(out)
    bounds = [(0, 5), (5, 10), (10, 16), (16, 23)]
    assert len(episodes) == 4
    for (start, stop), e in zip(bounds, episodes, strict=True):
        steps = e["steps"]
        assert_bit_equal(c["observations"][start:stop], steps["observation"][:-1])
        assert_bit_equal(c["next_observations"][stop - 1], steps["observation"][-1])
        assert_bit_equal(c["actions"][start:stop], steps["action"][:-1])
        assert_bit_equal(c["rewards"][start:stop], steps["reward"][:-1])
        assert steps["infos"]["qpos"].shape == (stop - start + 1, 3)
    assert [bool(e["steps"]["is_terminal"][-1]) for e in episodes] == [True, False, True, False]
    dataset = open_dataset(out)
    assert dataset.metadata["layout"] == "rlds"
    assert dataset.metadata["env_name"] == "hopper-medium-v2"
    from rlds_hub.storage.checksums import file_checksum

    files = dataset.metadata["provenance"]["sources"][0]["files"]
    assert files == {"hopper.hdf5": file_checksum(source)}


def test_convert_d4rl_without_next_observations_uses_the_oxe_layout(tmp_path):
    from rlds_hub.storage import episode_table

    source = tmp_path / "walker.h5"
    c = _d4rl_file(source, next_observations=False)
    out = tmp_path / "out"
    convert(source, out, run=Run(beam_args=FAST))
    episodes = _episodes(out)
    assert [len(e["steps"]["is_first"]) for e in episodes] == [5, 5, 6, 7]
    assert_bit_equal(c["actions"][16:23], episodes[3]["steps"]["action"])
    rows = episode_table(out)
    assert rows[0]["num_transitions"] == 5
    assert rows[0]["return"] == pytest.approx(float(c["rewards"][0:5].astype(np.float64).sum()))
    assert open_dataset(out).metadata["layout"] == "oxe"


def test_d4rl_files_missing_keys_or_with_uneven_columns_are_refused(tmp_path):
    source = tmp_path / "bad.hdf5"
    with h5py.File(source, "w") as f:
        f["observations"] = np.zeros((5, 2))
        f["actions"] = np.zeros((5, 1))
        f["rewards"] = np.zeros(5)
    with pytest.raises(SourceFormatError, match=r"bad.hdf5: missing .*terminals.*timeouts"):
        convert(source, tmp_path / "out", run=Run(beam_args=FAST))
    with h5py.File(source, "a") as f:
        f["terminals"] = np.zeros(5, bool)
        f["timeouts"] = np.zeros(4, bool)
    with pytest.raises(SourceFormatError, match=r"different lengths.*timeouts: 4"):
        convert(source, tmp_path / "out", run=Run(beam_args=FAST))
    assert not (tmp_path / "out").exists()


def test_nested_spec_helper_is_what_the_recorder_records():
    assert set(NESTED_SPEC) == {"position", "camera", "count", "flags"}


def test_the_fast_envlogger_decoder_returns_what_envlogger_reader_returns(logs):
    from rlds_hub.beam.sources import describe_source
    from rlds_hub.beam.sources.envlogger_source import EnvloggerReader

    description = describe_source(logs, "envlogger")
    fast, public = EnvloggerReader(os.fspath(logs)), EnvloggerReader(os.fspath(logs), fast=False)
    compared = 0
    for unit in description.units:
        for (i, a, _), (j, b, _) in zip(fast.episodes(unit), public.episodes(unit), strict=True):
            assert i == j and a.keys() == b.keys()
            for key in a:
                assert_bit_equal(np.asarray(b[key]), np.asarray(a[key]), key)
            compared += 1
    assert compared == 8
