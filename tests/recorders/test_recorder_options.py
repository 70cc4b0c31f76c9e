"""The Recorder's options as values (WriterOptions, Provenance): the same datasets as the
keywords, each option given once; the Riegeli backend refuses what it cannot honour and
writes the provenance it is given, which ``convert`` reads back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dm_env import specs

from rlds_hub.format.metadata import DatasetMetadata
from rlds_hub.recorders.options import Provenance, WriterOptions
from rlds_hub.recorders.recorder import Recorder
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.testing.envs import CounterEnv

FAST = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def _step_fn(timestep, action, env):
    return {"energy": np.float32(env.stepped)}


def _episode_fn(timestep, action, env):
    return {"episode": np.int64(env.episode)}


def _run(recorder: Recorder, episodes: int = 3) -> None:
    with recorder:
        for _ in range(episodes):
            timestep = recorder.reset()
            while not timestep.last():
                timestep = recorder.step(np.zeros((), np.float32))


def _env() -> CounterEnv:
    return CounterEnv((3, 2, 4))


# ---- value objects and keywords ------------------------------------------------------------

FLAT = dict(
    name="robot",
    split="demos",
    max_episodes_per_shard=2,
    max_bytes_per_shard=10_000,
    durability="os",
    image_encoding="raw",
    step_metadata_spec={"energy": specs.Array((), np.float32, "energy")},
    episode_metadata_spec={"episode": specs.Array((), np.int64, "episode")},
    save_unfinished_episodes=False,
    allow_env_change=True,
)
PROVENANCE = dict(env_name="counting", policy_name="scripted", seed=7, metadata={"lab": "A"})


def _contents(path: Path) -> dict[str, object]:
    """Every file's content, less the wall-clock times (creation, session start, episodes)."""
    out: dict[str, object] = {}
    for file in sorted(path.iterdir()):
        if file.name == "metadata.json":
            meta = json.loads(file.read_text())
            meta.pop("created")
            for session in meta["sessions"]:
                session.pop("started")
            out[file.name] = meta
        elif file.name == "episodes.jsonl":
            rows = [json.loads(line) for line in file.read_text().splitlines()]
            out[file.name] = [{k: v for k, v in r.items() if k != "recorded_at"} for r in rows]
        elif file.is_file() and not file.name.startswith("."):
            out[file.name] = file.read_bytes()
    return out


def test_value_objects_and_flat_keywords_give_identical_datasets(tmp_path):
    hooks = dict(step_fn=_step_fn, episode_fn=_episode_fn)
    _run(Recorder(_env(), tmp_path / "flat", **FLAT, **PROVENANCE, **hooks))
    _run(
        Recorder(
            _env(),
            tmp_path / "values",
            options=WriterOptions(**FLAT),
            provenance=Provenance(**PROVENANCE),
            **hooks,
        )
    )
    flat, values = _contents(tmp_path / "flat"), _contents(tmp_path / "values")
    assert flat == values
    assert len([n for n in flat if ".tfrecord-" in n]) == 2  # two episodes per shard
    meta = DatasetMetadata.from_json(json.loads((tmp_path / "flat/metadata.json").read_text()))
    assert (meta.env_name, meta.policy, meta.seed, meta.user) == (
        "counting",
        "scripted",
        7,
        {"lab": "A"},
    )
    assert meta.image_encoding == "raw" and meta.sessions[0].split == "demos"


def test_defaults_are_the_same_either_way(tmp_path):
    default = Recorder(_env(), tmp_path / "a" / "ds")
    given = Recorder(
        _env(), tmp_path / "b" / "ds", options=WriterOptions(), provenance=Provenance()
    )
    for recorder in (default, given):
        _run(recorder, episodes=1)
    assert default.options == given.options == WriterOptions()
    assert _contents(tmp_path / "a" / "ds") == _contents(tmp_path / "b" / "ds")
    assert json.loads((tmp_path / "a/ds/metadata.json").read_text())["image_encoding"] == "png"


@pytest.mark.parametrize(
    ("keywords", "named"),
    [
        (dict(split="test", options=WriterOptions(split="train")), "split"),
        (dict(seed=1, provenance=Provenance(seed=2)), "seed"),
        (dict(metadata={"a": 1}, provenance=Provenance()), "metadata"),
    ],
)
def test_an_option_given_twice_is_refused(tmp_path, keywords, named):
    with pytest.raises(TypeError, match=f"{named} given both as keyword"):
        Recorder(_env(), tmp_path / "ds", **keywords)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(file_format="csv"), "file_format must be one of"),
        (dict(durability="disk"), "durability must be one of"),
        (dict(image_encoding="jpeg"), "image_encoding must be one of"),
    ],
)
def test_bad_option_values_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        WriterOptions(**options)


# ---- Riegeli ---------------------------------------------------------------------------------

REFUSED = [
    ("name", "robot"),
    ("split", "test"),
    ("max_bytes_per_shard", 1000),
    ("durability", "process"),
    ("durability", "os"),
    ("image_encoding", "png"),
    ("image_encoding", "raw"),
    ("step_metadata_spec", {"energy": specs.Array((), np.float32, "energy")}),
    ("episode_metadata_spec", {"episode": specs.Array((), np.int64, "episode")}),
    ("save_unfinished_episodes", False),
    ("allow_env_change", True),
]


@pytest.mark.parametrize(("option", "value"), REFUSED)
@pytest.mark.parametrize("as_value", [False, True], ids=["keyword", "WriterOptions"])
def test_riegeli_refuses_each_option_it_cannot_honour(tmp_path, option, value, as_value):
    if as_value:
        given = dict(options=WriterOptions(file_format="riegeli", **{option: value}))
    else:
        given = dict(file_format="riegeli", **{option: value})
    with pytest.raises(ValueError, match=f"file_format='riegeli'.*cannot honour:\n  {option}"):
        Recorder(_env(), tmp_path / "logs", **given)
    assert not (tmp_path / "logs").exists()  # refused before anything is written


def test_riegeli_lists_every_refused_option_at_once(tmp_path):
    with pytest.raises(ValueError) as refused:
        Recorder(_env(), tmp_path / "logs", file_format="riegeli", name="x", split="y")
    assert "\n  name:" in str(refused.value) and "\n  split:" in str(refused.value)


def test_riegeli_takes_what_it_honours_and_refuses_a_second_recording(tmp_path):
    import envlogger

    recorder = Recorder(
        _env(),
        tmp_path / "logs",
        file_format="riegeli",
        max_episodes_per_shard=1,
        max_bytes_per_shard=None,
        step_fn=_step_fn,
    )
    _run(recorder)
    with envlogger.Reader(str(tmp_path / "logs")) as reader:
        assert [len(e) for e in reader.episodes] == [4, 3, 5]
    assert (recorder.num_episodes, recorder.data_dir) == (3, str(tmp_path / "logs"))
    with pytest.raises(DatasetError, match="already holds an envlogger log"):
        Recorder(_env(), tmp_path / "logs", file_format="riegeli")
    with pytest.raises(ValueError, match="'rlds_hub' is reserved"):
        Recorder(_env(), tmp_path / "other", file_format="riegeli", metadata={"rlds_hub": 1})


def test_riegeli_provenance_is_readable_after_conversion(tmp_path):
    from rlds_hub.cli import main

    for run, (policy, seed) in enumerate([("scripted", 7), (None, 8)]):
        _run(
            Recorder(
                _env(),
                tmp_path / "logs" / f"run{run}",
                file_format="riegeli",
                provenance=Provenance("counting", policy, seed, {"lab": "A"}),
            ),
            episodes=1,
        )
    out = tmp_path / "converted"
    argv = ["convert", "--input", str(tmp_path / "logs"), "--output", str(out), "--quiet"]
    assert main([*argv, *FAST]) == 0
    meta = DatasetMetadata.from_json(json.loads((out / "metadata.json").read_text()))
    assert (meta.env_name, meta.policy, meta.seed) == ("counting", "scripted", 7)
    assert [(s.env_name, s.policy, s.seed) for s in meta.sessions] == [
        ("counting", "scripted", 7),
        ("counting", None, 8),
    ]
    assert meta.sessions[0].rlds_hub_version and meta.sessions[0].host
    assert meta.source.extra["envlogger_metadata"] == [{"lab": "A"}, {"lab": "A"}]


def test_rlds_hub_record_in_riegeli_keeps_working_and_refuses_what_it_cannot(tmp_path, capsys):
    from rlds_hub.cli import main

    argv = [
        "record",
        "--env",
        "gym/CartPole-v1",
        "--policy",
        "random",
        "--episodes",
        "1",
        "--quiet",
    ]
    assert main([*argv, "--out", str(tmp_path / "a"), "--file-format", "riegeli"]) == 0
    assert (tmp_path / "a" / "metadata.riegeli").exists()
    refused = [
        *argv,
        "--out",
        str(tmp_path / "b"),
        "--file-format",
        "riegeli",
        "--durability",
        "os",
    ]
    assert main(refused) == 2
    assert (
        "durability: envlogger's writer completes a log only at close()" in capsys.readouterr().err
    )
