"""What conversions and jobs keep (issue 15, item 19): D4RL's ``metadata/*`` group and
Minari's metadata (compared with what TFDS's D4RL builder and Minari's own storage read),
TFDS's citation, homepage, release notes and licence through every job, Beam quantiles
through an in-process ``stats --save``, and per-episode provenance (``source`` in
``episodes.jsonl``) from conversions through chains of jobs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest

from rlds_hub.beam.job_values import Run
from rlds_hub.beam.jobs.convert import convert
from rlds_hub.beam.jobs.filter import filter_dataset
from rlds_hub.beam.jobs.map import map_dataset
from rlds_hub.beam.jobs.merge import merge
from rlds_hub.beam.jobs.reshard import reshard
from rlds_hub.beam.jobs.split import split_dataset
from rlds_hub.beam.jobs.stats import compute_statistics
from rlds_hub.inspection.stats import save_statistics, saved_statistics, statistics
from rlds_hub.storage import open_dataset
from rlds_hub.testing import assert_bit_equal
from rlds_hub.testing.beam_jobs import FAST, record_nested


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in (Path(path) / "episodes.jsonl").read_text().splitlines()]


# ---- D4RL ---------------------------------------------------------------------------------


def _d4rl_with_metadata(path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 12
    with h5py.File(path, "w") as f:
        f["observations"] = rng.standard_normal((n, 3))
        f["actions"] = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        f["rewards"] = rng.standard_normal(n).astype(np.float32)
        terminals = np.zeros(n, bool)
        terminals[4] = True
        f["terminals"] = terminals
        timeouts = np.zeros(n, bool)
        timeouts[8] = True
        f["timeouts"] = timeouts
        f["next_observations"] = rng.standard_normal((n, 3))
        # what D4RL's mujoco files hold under metadata/
        f["metadata/algorithm"] = np.bytes_("SAC")
        f["metadata/iteration"] = np.int64(1_000_000)
        f["metadata/policy/fc0/weight"] = rng.standard_normal((4, 3)).astype(np.float32)
        f["metadata/policy/fc0/bias"] = rng.standard_normal(4).astype(np.float32)
        f["metadata/policy/nonlinearity"] = np.bytes_("relu")
        f["metadata/policy/last_fc/weight"] = rng.standard_normal((2, 4))


def test_d4rl_convert_keeps_the_metadata_group_as_tfds_d4rl_builder_reads_it(tmp_path):
    from tensorflow_datasets.d4rl import dataset_utils

    from rlds_hub.beam.sources.d4rl_source import metadata_arrays

    source = tmp_path / "hopper.hdf5"
    _d4rl_with_metadata(source)
    out = tmp_path / "out"
    convert(source, out, run=Run(beam_args=FAST))
    kept = metadata_arrays(open_dataset(out).metadata["source"]["metadata"])
    # TFDS's builder copies metadata/* into every episode; it is one file's metadata, so
    # rlds_hub keeps it once, in metadata.json (source.metadata).
    episode = next(dataset_utils.generate_examples(os.fspath(source)))[1]
    theirs = {key: value for key, value in episode.items() if key != "steps"}
    assert set(theirs) == {"algorithm", "iteration", "policy"}

    def compare(mine, expected, where=""):
        assert set(mine) == set(expected), where
        for key, value in expected.items():
            if isinstance(value, dict):
                compare(mine[key], value, f"{where}/{key}")
            elif isinstance(value, bytes):
                assert mine[key] == value.decode(), f"{where}/{key}"
            elif np.ndim(value) == 0:
                assert mine[key] == value, f"{where}/{key}"
            else:
                assert_bit_equal(np.asarray(value), mine[key])

    compare(kept, theirs)
    assert kept["policy"]["fc0"]["weight"].dtype == np.float32
    assert kept["policy"]["last_fc"]["weight"].dtype == np.float64


def test_d4rl_rows_say_which_transitions_each_episode_came_from(tmp_path):
    source = tmp_path / "hopper.hdf5"
    _d4rl_with_metadata(source)
    out = tmp_path / "out"
    convert(source, out, run=Run(beam_args=FAST))
    assert [r["source"] for r in _rows(out)] == [
        {"path": "hopper.hdf5", "episode": 0, "rows": [0, 5]},
        {"path": "hopper.hdf5", "episode": 1, "rows": [5, 9]},
        {"path": "hopper.hdf5", "episode": 2, "rows": [9, 12]},
    ]


# ---- Minari -------------------------------------------------------------------------------


def _minari_with_metadata(root: Path) -> Path:
    from minari import DataCollector

    env_id = "RldsHubNested-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point="test_beam_convert:NestedEnv", max_episode_steps=6)
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = os.fspath(root)
    try:
        env = DataCollector(gym.make(env_id), record_infos=True, data_format="arrow")
        for seed in range(3):
            env.reset(seed=seed)
            done = False
            while not done:
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                done = terminated or truncated
        env.create_dataset(
            dataset_id="rldshub/meta-v0",
            algorithm_name="SAC",
            author="Ada",
            author_email="ada@example.org",
            code_permalink="https://example.org/code",
            description="three episodes",
            eval_env=env_id,
            ref_min_score=-3.0,
            ref_max_score=12.5,
            requirements=["gymnasium>=1"],
        )
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
    return root / "rldshub" / "meta-v0"


def test_minari_convert_keeps_all_of_minaris_metadata(tmp_path):
    from minari.dataset.minari_storage import MinariStorage

    source = _minari_with_metadata(tmp_path / "minari")
    out = tmp_path / "out"
    convert(source, out, run=Run(beam_args=FAST))
    dataset = open_dataset(out)
    kept = dataset.metadata["source"]["metadata"]
    assert kept == MinariStorage.read_raw_metadata(source / "data")
    for key in (
        "algorithm_name",
        "author",
        "code_permalink",
        "description",
        "env_spec",
        "eval_env_spec",
        "ref_min_score",
        "ref_max_score",
    ):
        assert key in kept, key
    assert kept["ref_min_score"] == -3.0 and kept["ref_max_score"] == 12.5
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["location"] == {"urls": ["https://example.org/code"]}
    assert info["description"].startswith("three episodes\n\nRLDS episodes converted from")
    assert [r["source"] for r in _rows(out)] == [{"path": "data", "episode": i} for i in range(3)]


# ---- envlogger and chains of jobs ----------------------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Envlogger logs in two folders, converted."""
    root = tmp_path_factory.mktemp("meta")
    record_nested(root / "logs" / "a", episodes=3, per_shard=2, file_format="riegeli", seed=1)
    record_nested(root / "logs" / "b", episodes=2, per_shard=2, file_format="riegeli", seed=2)
    out = root / "converted"
    convert(root / "logs", out, run=Run(beam_args=FAST))
    return out


def test_convert_records_the_log_folder_and_episode_of_every_episode(converted):
    assert [r["source"] for r in _rows(converted)] == [
        {"path": "a", "episode": 0},
        {"path": "a", "episode": 1},
        {"path": "a", "episode": 2},
        {"path": "b", "episode": 0},
        {"path": "b", "episode": 1},
    ]


@pytest.mark.slow
def test_jobs_record_the_input_episode_and_keep_the_origin_through_a_chain(converted, tmp_path):
    filtered = tmp_path / "filtered"
    filter_dataset(
        converted, filtered, where="test_beam_metadata:_keep_odd_row", run=Run(beam_args=FAST)
    )
    rows = _rows(filtered)
    assert [r["source"] for r in rows] == [
        {"input": 0, "split": "train", "episode": 1, "origin": {"path": "a", "episode": 1}},
        {"input": 0, "split": "train", "episode": 3, "origin": {"path": "b", "episode": 0}},
    ]
    again = tmp_path / "again"
    reshard(filtered, again, run=Run(beam_args=FAST))
    assert [r["source"] for r in _rows(again)] == [
        {"input": 0, "split": "train", "episode": 0, "origin": {"path": "a", "episode": 1}},
        {"input": 0, "split": "train", "episode": 1, "origin": {"path": "b", "episode": 0}},
    ]
    mapped = tmp_path / "mapped"
    map_dataset(again, mapped, step_fn="test_beam_metadata:_same_step", run=Run(beam_args=FAST))
    assert [r["source"] for r in _rows(mapped)] == [r["source"] for r in _rows(again)]
    merged = tmp_path / "merged"
    merge([filtered, converted], merged, run=Run(beam_args=FAST))
    sources = [r["source"] for r in _rows(merged)]
    assert [(s["input"], s["episode"]) for s in sources] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
        (1, 4),
    ]
    assert sources[1]["origin"] == {"path": "b", "episode": 0}
    assert sources[2]["origin"] == {"path": "a", "episode": 0}
    splitted = tmp_path / "split"
    split_dataset(converted, splitted, fractions="train=0.5,test=0.5", run=Run(beam_args=FAST))
    assert sorted(
        (r["source"]["episode"], r["source"]["origin"]["path"]) for r in _rows(splitted)
    ) == [(0, "a"), (1, "a"), (2, "a"), (3, "b"), (4, "b")]


def _keep_odd_row(row):
    return row["episode"] % 2 == 1


def _same_step(step):
    return step


# ---- dataset_info.json fields through the jobs ---------------------------------------------


INFO = {
    "citation": "@misc{robot2026, title={Robot}}",
    "location": {"urls": ["https://example.org/robot"]},
    "releaseNotes": {"1.2.0": "More episodes.", "1.0.0": "Initial release."},
    "redistributionInfo": {"license": "CC-BY-4.0"},
    "version": "1.2.0",
    "description": "Robot episodes.",
}


@pytest.mark.slow
def test_every_job_keeps_citation_homepage_release_notes_licence_and_version(converted, tmp_path):
    import tensorflow_datasets as tfds

    source = tmp_path / "source"
    reshard(converted, source, run=Run(beam_args=FAST))
    path = source / "dataset_info.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **INFO}))
    outputs = {
        "reshard": lambda out: reshard(source, out, run=Run(beam_args=FAST)),
        "filter": lambda out: filter_dataset(source, out, min_length=1, run=Run(beam_args=FAST)),
        "map": lambda out: map_dataset(
            source, out, step_fn="test_beam_metadata:_same_step", run=Run(beam_args=FAST)
        ),
        "merge": lambda out: merge([source, converted], out, run=Run(beam_args=FAST)),
        "split": lambda out: split_dataset(source, out, run=Run(beam_args=FAST)),
    }
    for job, run in outputs.items():
        out = tmp_path / job
        run(out)
        info = json.loads((out / "dataset_info.json").read_text())
        for key, value in INFO.items():
            assert info.get(key) == value, (job, key)
    builder = tfds.builder_from_directory(os.fspath(tmp_path / "reshard"))
    assert builder.info.citation == INFO["citation"]
    assert builder.info.homepage == "https://example.org/robot"
    assert builder.info.redistribution_info.license == "CC-BY-4.0"
    assert str(builder.info.version) == "1.2.0"
    assert len(list(builder.as_dataset(split="train"))) == 5


# ---- statistics -----------------------------------------------------------------------------


def test_in_process_stats_save_keeps_the_beam_quantiles_of_unchanged_data(converted, tmp_path):
    copy = tmp_path / "copy"
    reshard(converted, copy, run=Run(beam_args=FAST))
    compute_statistics(copy, run=Run(beam_args=FAST))
    beam_saved = saved_statistics(copy)
    position = beam_saved["splits"]["train"]["features"]["observation/position"]
    assert position["p50"] is not None
    from rlds_hub.cli import main

    assert main(["stats", str(copy), "--save", "--quiet"]) == 0  # in-process, no --runner
    saved = saved_statistics(copy)
    kept = saved["splits"]["train"]["features"]["observation/position"]
    for name in ("p5", "p25", "p50", "p75", "p95", "quantile_rank_error"):
        assert kept[name] == position[name], name
    assert saved["splits"]["train"]["quantiles"]["runner"] == beam_saved["runner"]
    assert saved["splits"]["train"]["quantiles"]["computed_by"] == "rlds-hub stats (Beam)"


def test_stale_quantiles_are_not_kept_when_the_data_changed(converted, tmp_path):
    copy = tmp_path / "copy"
    reshard(converted, copy, run=Run(beam_args=FAST))
    compute_statistics(copy, run=Run(beam_args=FAST))
    other = tmp_path / "other"
    filter_dataset(
        converted, other, where="test_beam_metadata:_keep_odd_row", run=Run(beam_args=FAST)
    )
    save_statistics(copy, [statistics(other, "train")], computed_by="rlds-hub stats")
    kept = saved_statistics(copy)["splits"]["train"]
    assert "p50" not in kept["features"]["observation/position"]
    assert "quantiles" not in kept


def test_learners_normalise_with_minaris_reference_scores(tmp_path):
    from rlds_hub.learners import evaluation

    source = _minari_with_metadata(tmp_path / "minari")
    out = tmp_path / "out"
    convert(source, out, run=Run(beam_args=FAST))
    refs = evaluation.source_references(open_dataset(out).metadata)
    assert refs["expert"] == 12.5 and refs["random"] == -3.0
    measured = evaluation.reference_returns(
        "gym/CartPole-v1", seed=0, episodes=1, dataset_return=1.0, dataset_references=refs
    )
    assert measured["expert"] == 12.5 and measured["random"] == -3.0
    assert measured["expert_source"] == "minari ref_max_score"
    assert evaluation.normalized_return([4.75], measured) == pytest.approx(0.5)
