"""The dataset-metadata model: ``from_json(data).to_json() == data`` for what the recorder,
each Beam job and TFDS write (nothing dropped), typed reads, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlds_hub.format.metadata import (
    DatasetMetadata,
    JobProvenance,
    MetadataError,
    Session,
    env_specs_json,
)
from rlds_hub.recorders import Recorder
from rlds_hub.storage.dataset import open_dataset
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.testing.envs import CounterEnv

FAST = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def _record(path: Path, episodes: int = 2, **options) -> CounterEnv:
    env = CounterEnv((3, 2))
    with Recorder(env, path, **options) as recorder:
        for _ in range(episodes):
            timestep = recorder.reset()
            while not timestep.last():
                timestep = recorder.step(np.zeros((), np.float32))
    return env


def _file(path: Path) -> dict:
    return json.loads((Path(path) / "metadata.json").read_text())


def _assert_round_trip(data: dict) -> DatasetMetadata:
    parsed = DatasetMetadata.from_json(data)
    assert parsed.to_json() == data
    return parsed


def test_recorder_metadata_round_trips_and_reads_typed(tmp_path):
    path = tmp_path / "robot"
    energy = lambda timestep, action, env: {"energy": np.float32(1.0)}  # noqa: E731
    _record(
        path,
        env_name="counting",
        policy_name="scripted",
        seed=7,
        metadata={"lab": "A"},
        step_fn=energy,
    )
    _record(path, env_name="counting", seed=8, step_fn=energy)
    data = _file(path)
    meta = _assert_round_trip(data)
    assert (meta.env_name, meta.policy, meta.seed, meta.user) == (
        "counting",
        "scripted",
        7,
        {"lab": "A"},
    )
    assert meta.layout == "rlds" and meta.image_encoding == "png" and "step_metadata" in meta.specs
    assert [s.seed for s in meta.sessions] == [7, 8] and meta.sessions[1].policy is None
    assert "policy" in data["sessions"][1]  # an explicit null is written back as null
    assert meta.seeds_used == [7, 8] and meta.recorded_envs == ["counting"]
    assert open_dataset(path).dataset_metadata == meta


def test_env_specs_json_is_what_the_recorder_stores(tmp_path):
    env = _record(tmp_path / "robot")
    specs = env_specs_json(
        env.observation_spec(), env.action_spec(), env.reward_spec(), env.discount_spec()
    )
    assert specs == _file(tmp_path / "robot")["specs"]
    assert list(specs) == ["observation", "action", "reward", "discount"]
    with_metadata = env_specs_json(
        *(env.observation_spec(), env.action_spec(), env.reward_spec(), env.discount_spec()),
        step_metadata={},
        episode_metadata={"id": env.reward_spec()},
    )
    assert list(with_metadata)[4:] == ["episode_metadata"]  # an empty spec is left out


@pytest.mark.slow
def test_every_beam_job_output_round_trips(tmp_path):
    """reshard, filter, map, merge, split, export (its provenance), the record job, and
    convert of envlogger logs and of a D4RL file."""
    import h5py

    from rlds_hub.beam.job_values import Run
    from rlds_hub.beam.recording import record_dataset
    from rlds_hub.cli import main

    source = tmp_path / "robot"
    _record(source, episodes=4, env_name="counting", seed=1)
    _record(source, episodes=1, env_name="counting", seed=2, policy_name="other")
    riegeli = tmp_path / "logs" / "run"
    _record(riegeli, file_format="riegeli")
    d4rl = tmp_path / "hopper.hdf5"
    with h5py.File(d4rl, "w") as f:
        f["observations"] = np.zeros((5, 2))
        f["actions"] = np.zeros((5, 1), np.float32)
        f["rewards"] = np.ones(5, np.float32)
        f["terminals"] = np.array([0, 1, 0, 0, 0], bool)
        f["timeouts"] = np.zeros(5, bool)
        f.attrs["env_name"] = "hopper-medium-v2"
    io = ["--quiet", *FAST]
    runs = {
        "reshard": ["reshard", "--input", source, "--num-shards", "2"],
        "filter": ["filter", "--input", source, "--min-length", "3"],
        "map": ["map", "--input", source, "--episode-fn", f"{__name__}:_double_reward"],
        "merge": ["merge", "--input", source, "--input", tmp_path / "reshard"],
        "split": ["split", "--input", source, "--fractions", "train=0.5,test=0.5"],
        "convert_envlogger": ["convert", "--input", riegeli.parent],
        "convert_d4rl": ["convert", "--input", d4rl],
    }
    for job, argv in runs.items():
        out = tmp_path / job
        assert main([*map(str, argv), "--output", str(out), *io]) == 0, job
        meta = _assert_round_trip(_file(out))
        assert meta.provenance.job == job.split("_")[0] and meta.provenance.to_json()
    assert _assert_round_trip(_file(tmp_path / "map")).specs is None  # map drops the specs
    merged = DatasetMetadata.from_json(_file(tmp_path / "merge")).merged_from
    assert [m.metadata.sessions for m in merged] == [
        DatasetMetadata.from_json(_file(source)).sessions
    ] * 2
    converted = DatasetMetadata.from_json(_file(tmp_path / "convert_d4rl"))
    assert converted.source.format == "d4rl" and converted.env_name == "hopper-medium-v2"
    assert DatasetMetadata.from_json(_file(tmp_path / "convert_envlogger")).source.extra["log_dirs"]
    assert main(["export", "--input", str(source), "--output", str(tmp_path / "x"), *io]) == 0
    marker = json.loads((tmp_path / "x" / "export.json").read_text())["provenance"]
    assert JobProvenance.from_json(marker).to_json() == marker
    record_dataset(
        "gym/CartPole-v1",
        tmp_path / "recorded",
        policy="random",
        episodes=2,
        run=Run(beam_args=FAST),
    )
    recorded = _assert_round_trip(_file(tmp_path / "recorded"))
    assert recorded.seeds and recorded.policy == "random"


def _double_reward(episode):
    episode["steps"]["reward"] = episode["steps"]["reward"] * 2
    return episode


def test_a_dataset_without_metadata_json_has_empty_metadata(tmp_path):
    _record(tmp_path / "robot")
    (tmp_path / "robot" / "metadata.json").unlink()
    meta = open_dataset(tmp_path / "robot").dataset_metadata
    assert meta == DatasetMetadata() and meta.to_json() == {} and meta.seeds_used == []


@pytest.mark.slow
def test_an_oxe_dataset_written_by_tfds_has_empty_metadata(tmp_path):
    from rlds_hub.testing.oxe import oxe_episode, write_oxe_dataset

    rng = np.random.default_rng(0)
    path = write_oxe_dataset(str(tmp_path), [oxe_episode(i, 3, rng) for i in range(2)], shards=1)
    assert not (Path(path) / "metadata.json").exists()
    meta = open_dataset(path).dataset_metadata
    assert meta == DatasetMetadata() and meta.to_json() == {}
    assert meta.sessions is None and meta.layout is None and meta.seeds_used == []


def test_foreign_keys_and_nulls_are_kept_at_every_level():
    data = {
        "dataset_card": {"license": "CC-BY-4.0"},  # a TFDS MetadataDict's own keys
        "env_name": None,
        "pipeline": {"job": "legacy"},
        "sessions": [{"seed": 3, "operator": "alice", "policy": None}],
        "source": {"format": "minari", "dataset_id": "door/human-v2", "metadata": [1, "x"]},
        "provenance": {"job": "filter", "previous": {"job": "convert", "note": 1}},
    }
    meta = _assert_round_trip(data)
    assert meta.extra == {"dataset_card": {"license": "CC-BY-4.0"}, "pipeline": {"job": "legacy"}}
    assert meta.sessions == (
        Session(seed=3, extra={"operator": "alice"}, nulls=frozenset({"policy"})),
    )
    assert meta.provenance.previous.job == "convert" and meta.source.extra == {
        "dataset_id": "door/human-v2"
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"seed": "seven"}, "'seed' must be an integer, got 'seven'"),
        ({"seed": True}, "'seed' must be an integer"),
        ({"sessions": {"a": 1}}, "'sessions' must be a JSON list"),
        ({"sessions": [{"env_name": 5}]}, "'sessions[0].env_name' must be a string"),
        ({"source": "minari"}, "'source' must be a JSON object"),
        ({"provenance": {"previous": {"runner": []}}}, "'provenance.previous.runner'"),
        ({"merged_from": [{"metadata": {"layout": 1}}]}, "'merged_from[0].metadata.layout'"),
        ([1, 2], "the metadata must be a JSON object, got list"),
    ],
)
def test_a_malformed_value_names_its_key(data, message):
    with pytest.raises(MetadataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        DatasetMetadata.from_json(data)


def test_a_malformed_metadata_json_names_the_file_and_the_key(tmp_path):
    _record(tmp_path / "robot")
    data = _file(tmp_path / "robot")
    data["layout"] = ["rlds"]
    (tmp_path / "robot" / "metadata.json").write_text(json.dumps(data))
    dataset = open_dataset(tmp_path / "robot")  # opening reads no metadata value
    with pytest.raises(DatasetError, match=r"robot/metadata.json.*'layout' must be a string"):
        dataset.dataset_metadata  # noqa: B018


def test_appending_a_session_keeps_every_key_of_metadata_json(tmp_path):
    path = tmp_path / "robot"
    _record(path, env_name="counting", seed=1)
    data = _file(path)
    data["dataset_card"] = {"license": "CC-BY-4.0"}
    data["sessions"][0]["operator"] = "alice"
    (path / "metadata.json").write_text(json.dumps(data))
    _record(path, env_name="counting", seed=2)
    appended = _file(path)
    assert appended["sessions"][:1] == data["sessions"]
    assert [s["seed"] for s in appended["sessions"]] == [1, 2]
    assert {k: v for k, v in appended.items() if k != "sessions"} == {
        k: v for k, v in data.items() if k != "sessions"
    }


def test_recording_into_a_dataset_with_a_malformed_metadata_json_says_which_key(tmp_path):
    path = tmp_path / "robot"
    _record(path)
    data = _file(path)
    data["sessions"] = "one"
    (path / "metadata.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"in its metadata\.json, metadata key 'sessions'"):
        _record(path)


# ---- any metadata.json round-trips -------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_text = st.none() | st.text(max_size=6)
_int = st.none() | st.integers()
_object = st.none() | st.dictionaries(st.text(max_size=4), _json_values, max_size=3)


def _record_of(fields: dict) -> st.SearchStrategy:
    """JSON objects with any subset of ``fields`` (each value possibly null) and foreign keys."""
    known = st.fixed_dictionaries({}, optional=fields)
    foreign = st.dictionaries(
        st.text(min_size=1, max_size=6).map("x_".__add__), _json_values, max_size=2
    )
    return st.builds(lambda a, b: {**b, **a}, known, foreign)


_session = _record_of(
    dict(started=_text, split=_text, env_name=_text, policy=_text, seed=_int, host=_text)
)
_provenance = _record_of(
    dict(
        job=_text,
        arguments=_object,
        sources=st.none() | st.lists(_json_values, max_size=2),
        runner=_object,
    )
)
_metadata = _record_of(
    dict(
        rlds_hub_version=_text,
        created=_text,
        env_name=_text,
        policy=_text,
        seed=_int,
        seeds=_text,
        specs=_object,
        image_encoding=_text,
        layout=_text,
        user=_object,
        sessions=st.none() | st.lists(_session, max_size=2),
        source=st.none() | _record_of(dict(format=_text, path=_text, metadata=_json_values)),
        provenance=st.none()
        | st.builds(lambda p, q: {**p, "previous": q}, _provenance, st.none() | _provenance),
    )
)


@settings(max_examples=200, deadline=None)
@given(_metadata)
def test_any_well_typed_metadata_round_trips(data):
    assert DatasetMetadata.from_json(data).to_json() == data
