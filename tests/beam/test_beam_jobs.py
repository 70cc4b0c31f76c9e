"""The jobs on RLDS inputs: reshard, filter, map, merge, split, stats and export; atomic
output, provenance and checksums; the command line and ``python -m rlds_hub.pipelines.<job>``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rlds_hub.beam.job_values import Output, Run
from rlds_hub.beam.jobs.export import export
from rlds_hub.beam.jobs.filter import filter_dataset
from rlds_hub.beam.jobs.map import MapFunctionError, map_dataset
from rlds_hub.beam.jobs.merge import IncompatibleDatasetsError, merge
from rlds_hub.beam.jobs.reshard import reshard
from rlds_hub.beam.jobs.split import split_dataset
from rlds_hub.beam.jobs.stats import compute_statistics
from rlds_hub.beam.sink import EmptyOutputError, Sharding
from rlds_hub.inspection.stats import saved_statistics, statistics
from rlds_hub.inspection.validate import validate
from rlds_hub.storage import episode_table, iter_episodes, iter_records, open_dataset
from rlds_hub.storage.query import select_episodes
from rlds_hub.testing import assert_bit_equal
from rlds_hub.testing.beam_jobs import (
    FAST,
    MULTI,
    dataset_files,
    metadata,
    no_staging_left,
    record_nested,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "robot"
    record_nested(path, episodes=7, per_shard=3)
    return path


def _records(path, split="train"):
    return [bytes(r.data) for r in iter_records(open_dataset(path), split)]


def _check_valid(path):
    report = validate(open_dataset(path), tensorflow=False)
    assert report.ok, report.problems


# ---- reshard ----------------------------------------------------------------------------


def test_reshard_copies_records_unchanged_into_the_shards_asked_for(source, tmp_path):
    out = tmp_path / "out"
    summary = reshard(source, Output(out, sharding=Sharding(num_shards=4)), run=Run(beam_args=FAST))
    dataset = open_dataset(out)
    assert summary["shards"] == 4 and dataset.split("train").shard_lengths == (1, 2, 2, 2)
    assert _records(out) == _records(source)
    assert dataset.features_json == open_dataset(source).features_json
    assert [r["return"] for r in episode_table(out, use_index=False)] == [
        r["return"] for r in episode_table(source, use_index=False)
    ]
    _check_valid(out)


@pytest.mark.slow
def test_reshard_to_array_record_and_back_is_lossless(source, tmp_path):
    reshard(
        source,
        Output(
            tmp_path / "ar", sharding=Sharding(max_episodes_per_shard=2), file_format="array_record"
        ),
        run=Run(beam_args=FAST),
    )
    assert open_dataset(tmp_path / "ar").file_format == "array_record"
    _check_valid(tmp_path / "ar")
    reshard(
        tmp_path / "ar", Output(tmp_path / "back", file_format="tfrecord"), run=Run(beam_args=FAST)
    )
    reshard(source, tmp_path / "direct", run=Run(beam_args=FAST))
    assert dataset_files(tmp_path / "back") == dataset_files(tmp_path / "direct")


@pytest.mark.slow
def test_reshard_output_is_identical_on_one_and_on_two_worker_processes(source, tmp_path):
    reshard(
        source,
        Output(tmp_path / "one", sharding=Sharding(max_bytes_per_shard=3_000)),
        run=Run(beam_args=FAST),
    )
    reshard(
        source,
        Output(tmp_path / "two", sharding=Sharding(max_bytes_per_shard=3_000)),
        run=Run(beam_args=MULTI),
    )
    assert dataset_files(tmp_path / "one") == dataset_files(tmp_path / "two")
    assert len(open_dataset(tmp_path / "one").split("train").shard_lengths) > 1


def test_reshard_of_a_split_slice_and_its_provenance(source, tmp_path):
    out = tmp_path / "out"
    reshard(source, out, split="train[2:5]", run=Run(beam_args=FAST))
    assert _records(out) == _records(source)[2:5]
    provenance = metadata(out)["provenance"]
    assert provenance["job"] == "reshard" and provenance["arguments"]["split"] == "train[2:5]"
    assert provenance["runner"]["runner"] == "DirectRunner"
    files = provenance["sources"][0]["files"]
    assert set(files) == {"robot-train.tfrecord-00000", "robot-train.tfrecord-00001"}
    assert metadata(out)["layout"] == "rlds"
    assert metadata(out)["sessions"] == metadata(source)["sessions"]  # the input's metadata


# ---- filter -----------------------------------------------------------------------------


def long_episode(row):
    return row["num_steps"] >= 5


def test_filter_by_length_return_and_termination_matches_select_episodes(source, tmp_path):
    out = tmp_path / "out"
    filter_dataset(source, out, min_length=5, terminated=True, run=Run(beam_args=FAST))
    kept = select_episodes(source, min_length=5, terminated=True)
    assert _records(out) == [_records(source)[i] for i in kept]
    table = episode_table(out)
    assert [r["episode"] for r in table] == list(range(len(kept)))
    _check_valid(out)


@pytest.mark.slow
def test_filter_by_metadata_and_by_a_predicate_function(source, tmp_path):
    filter_dataset(
        source, tmp_path / "alice", metadata={"operator": "alice"}, run=Run(beam_args=FAST)
    )
    operators = {r["metadata"]["operator"] for r in episode_table(tmp_path / "alice")}
    assert operators == {"alice"}
    filter_dataset(
        source, tmp_path / "long", where="test_beam_jobs:long_episode", run=Run(beam_args=MULTI)
    )  # the function reaches the worker processes by value
    assert all(r["num_steps"] >= 5 for r in episode_table(tmp_path / "long"))
    assert len(episode_table(tmp_path / "long")) == len(select_episodes(source, min_length=5))


def test_filter_random_fraction_is_reproducible_by_seed(source, tmp_path):
    def kept(seed, name):
        filter_dataset(source, tmp_path / name, fraction=0.5, seed=seed, run=Run(beam_args=FAST))
        return _records(tmp_path / name)

    first, again = kept(3, "a"), kept(3, "b")
    assert first == again and 0 < len(first) < 7
    assert any(kept(seed, f"s{seed}") != first for seed in (4, 5, 6))


def test_filter_that_keeps_nothing_writes_nothing(source, tmp_path):
    with pytest.raises(EmptyOutputError, match="no episodes"):
        filter_dataset(source, tmp_path / "out", min_length=10_000, run=Run(beam_args=FAST))
    assert not (tmp_path / "out").exists() and no_staging_left(tmp_path)
    with pytest.raises(TypeError, match="min_lenght"):
        filter_dataset(source, tmp_path / "out", min_lenght=3, run=Run(beam_args=FAST))


# ---- map --------------------------------------------------------------------------------


def double_reward(episode):
    steps = dict(episode["steps"])
    steps["reward"] = steps["reward"] * 2
    return {**episode, "steps": steps, "source_index": np.int64(episode["__index__"])}


def drop_energy_add_speed(step):
    step = {k: v for k, v in step.items() if k != "energy"}
    step["speed"] = np.float32(np.abs(step["action"]).sum())
    return step


def inconsistent(episode):
    steps = dict(episode["steps"])
    if episode["__index__"] == 4:
        steps["reward"] = steps["reward"].astype(np.float32)[:, None]
    return {**episode, "steps": steps}


def raising(episode):
    if episode["__index__"] == 2:
        raise RuntimeError("sensor table missing")
    return episode


def test_map_episode_function_relabels_rewards_and_adds_metadata(source, tmp_path):
    out = tmp_path / "out"
    map_dataset(source, out, episode_fn="test_beam_jobs:double_reward", run=Run(beam_args=FAST))
    for before, after in zip(
        iter_episodes(open_dataset(source)), iter_episodes(open_dataset(out)), strict=True
    ):
        assert_bit_equal(before["steps"]["reward"] * 2, after["steps"]["reward"])
        assert_bit_equal(before["steps"]["observation"], after["steps"]["observation"])
        assert int(after["source_index"]) == before["__index__"]
    _check_valid(out)
    assert "specs" not in metadata(out)  # the environment's specs no longer describe it


def test_map_step_function_derives_the_output_features(source, tmp_path):
    out = tmp_path / "out"
    map_dataset(source, out, step_fn=drop_energy_add_speed, run=Run(beam_args=FAST))
    plan = open_dataset(out).plan
    assert "steps/speed" in plan and "steps/energy" not in plan
    assert plan["steps/speed"].dtype == np.float32
    episode = next(iter_episodes(open_dataset(out)))
    assert episode["steps"]["speed"].shape == (len(episode["steps"]["reward"]),)


def test_map_errors_name_the_episode_and_leave_no_output(source, tmp_path):
    with pytest.raises(MapFunctionError, match=r"episode 4 .*same fields, shapes and dtypes"):
        map_dataset(source, tmp_path / "a", episode_fn=inconsistent, run=Run(beam_args=FAST))
    with pytest.raises(ValueError, match=r"episode 2 .*RuntimeError: sensor table missing"):
        map_dataset(source, tmp_path / "b", episode_fn=raising, run=Run(beam_args=FAST))
    with pytest.raises(ValueError, match="no attribute 'nope'"):
        map_dataset(
            source, tmp_path / "c", episode_fn="test_beam_jobs:nope", run=Run(beam_args=FAST)
        )
    assert not [p for p in tmp_path.iterdir()]


# ---- merge ------------------------------------------------------------------------------


def test_merge_joins_splits_in_input_order(source, tmp_path):
    other = tmp_path / "other"
    record_nested(other, episodes=3, seed=9)
    out = tmp_path / "out"
    merge([source, other], out, run=Run(beam_args=FAST))
    assert _records(out) == _records(source) + _records(other)
    assert [m["path"] for m in metadata(out)["merged_from"]] == [str(source), str(other)]
    _check_valid(out)


def test_merge_lists_every_difference_of_mismatched_inputs(source, tmp_path):
    from dm_env import specs

    from rlds_hub.testing import RandomSpecEnv, record

    other = tmp_path / "other"
    env = RandomSpecEnv({"position": specs.Array((4,), np.float32, "position")})
    record(env, other, episodes=1)
    with pytest.raises(IncompatibleDatasetsError) as error:
        merge([source, other], tmp_path / "out", run=Run(beam_args=FAST))
    message = str(error.value)
    assert "steps/observation/position: dtype float64 != float32" in message
    assert "steps/observation/position: shape (3,) != (4,)" in message
    assert "steps/observation/camera: only in the first dataset" in message
    assert "steps/energy: only in the first dataset" in message
    assert not (tmp_path / "out").exists()


# ---- split ------------------------------------------------------------------------------


def test_split_by_episode_id_hash_is_stable_when_episodes_are_added(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    record_nested(small, episodes=12, seed=1)
    record_nested(large, episodes=30, seed=1)
    fractions = {"train": 0.6, "validation": 0.2, "test": 0.2}
    split_dataset(small, tmp_path / "a", fractions=fractions, run=Run(beam_args=FAST))
    split_dataset(large, tmp_path / "b", fractions=fractions, run=Run(beam_args=FAST))

    def assignment(path):
        dataset = open_dataset(path)
        return {
            r["metadata"]["episode_id"]: s
            for s in dataset.splits
            for r in episode_table(dataset, s)
        }

    a, b = assignment(tmp_path / "a"), assignment(tmp_path / "b")
    assert set(a) == set(range(12)) and set(b) == set(range(30))
    assert all(b[i] == split for i, split in a.items())
    assert set(b.values()) == {"train", "validation", "test"}
    assert list(open_dataset(tmp_path / "b").splits) == ["train", "validation", "test"]
    _check_valid(tmp_path / "b")


def test_split_rejects_bad_fractions_and_unknown_id_keys(source, tmp_path):
    with pytest.raises(ValueError, match="sum to 1"):
        split_dataset(
            source, tmp_path / "o", fractions="train=0.8,test=0.1", run=Run(beam_args=FAST)
        )
    with pytest.raises(ValueError, match="name=value"):
        split_dataset(source, tmp_path / "o", fractions="train:0.8", run=Run(beam_args=FAST))
    with pytest.raises(ValueError, match="--id-key 'robot'"):
        split_dataset(source, tmp_path / "o", id_key="robot", run=Run(beam_args=FAST))


# ---- stats ------------------------------------------------------------------------------


def test_stats_match_the_core_statistics_and_add_exact_quantiles(source, tmp_path):
    copy = tmp_path / "copy"
    reshard(source, copy, run=Run(beam_args=FAST))
    (result,) = compute_statistics(copy, run=Run(beam_args=FAST))
    core = statistics(copy)
    assert result["num_steps"] == core["num_steps"]
    assert result["lengths"] == core["lengths"] and result["returns"] == core["returns"]
    assert result["skipped"] == core["skipped"]
    for name, feature in core["features"].items():
        ours = result["features"][name]
        for field in ("count", "nan_count", "inf_count", "shape", "dtype"):
            assert ours[field] == feature[field], (name, field)
        for field in ("mean", "std", "min", "max"):
            np.testing.assert_allclose(
                np.asarray(ours[field], float), np.asarray(feature[field], float), rtol=1e-9
            )
    # Quantiles are exact on data this small: the inverted CDF of the finite values.
    values = np.concatenate(
        [e["steps"]["observation"]["position"] for e in iter_episodes(open_dataset(copy))]
    )
    for column in range(3):
        finite = values[:, column][np.isfinite(values[:, column])]
        for q in (5, 50, 95):
            expected = np.quantile(finite, q / 100, method="inverted_cdf")
            assert result["features"]["observation/position"][f"p{q}"][column] == expected
    assert result["features"]["observation/position"]["quantile_rank_error"] == 0
    saved = saved_statistics(copy)
    assert saved["splits"]["train"]["features"]["observation/count"]["p50"] is not None
    assert saved["computed_by"] == "rlds-hub stats (Beam)"


# ---- export -----------------------------------------------------------------------------


def test_export_writes_steps_and_episodes_tables_duckdb_and_pandas_can_read(source, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    export(source, out, run=Run(beam_args=FAST))
    steps = pq.read_table(out / "steps").to_pydict()
    episodes = open_dataset(source)
    expected = list(iter_episodes(episodes))
    total = sum(len(e["steps"]["reward"]) for e in expected)
    assert len(steps["step"]) == total
    first = [i for i, e in enumerate(steps["episode"]) if e == 1]
    assert [steps["step"][i] for i in first] == list(range(len(first)))
    position = np.asarray([steps["observation/position"][i] for i in first])
    assert_bit_equal(expected[1]["steps"]["observation"]["position"], position)
    table = pq.read_table(out / "episodes").to_pydict()
    rows = episode_table(source)
    assert table["num_steps"] == [r["num_steps"] for r in rows]
    assert table["operator"] == [r["metadata"]["operator"] for r in rows]  # UTF-8 text
    marker = json.loads((out / "export.json").read_text())
    assert marker["tables"]["steps"]["columns"]["observation/camera"]["encoding"] == "png"
    from rlds_hub.storage.checksums import file_checksum

    for name, checksum in marker["files"].items():
        assert file_checksum(out / name) == checksum


# ---- failures, the command line ---------------------------------------------------------


@pytest.mark.slow
def test_a_killed_job_leaves_no_output_and_the_next_run_cleans_up(source, tmp_path):
    out = tmp_path / "out"
    script = tmp_path / "slow.py"
    script.write_text(
        "import time\n\ndef slow(episode):\n"
        "    if episode['__index__'] > 0:\n        time.sleep(60)\n"
        "    return episode\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlds_hub.pipelines.map",
            "--input",
            str(source),
            "--output",
            str(out),
            "--episode-fn",
            f"{script}:slow",
            "--direct_running_mode=in_memory",
            "--quiet",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-out-")]:
            assert time.time() < deadline and process.poll() is None
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not out.exists()
    reshard(source, out, run=Run(beam_args=FAST))
    assert open_dataset(out).num_episodes == 7 and no_staging_left(tmp_path)


@pytest.mark.slow
def test_cli_and_python_m_pipelines_run_the_same_jobs(source, tmp_path):
    from rlds_hub.cli import main

    assert (
        main(
            [
                "reshard",
                "--input",
                str(source),
                "--output",
                str(tmp_path / "cli"),
                "--num-shards",
                "2",
                "--quiet",
                *FAST,
            ]
        )
        == 0
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlds_hub.pipelines.reshard",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "module"),
            "--num-shards",
            "2",
            "--quiet",
            *FAST,
        ],
        cwd="/",
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert dataset_files(tmp_path / "cli") == dataset_files(tmp_path / "module")
    assert (
        main(
            ["reshard", "--input", str(source), "--output", str(tmp_path / "cli"), "--quiet", *FAST]
        )
        == 2
    )  # refuses the existing dataset
    assert (
        main(
            [
                "stats",
                str(tmp_path / "cli"),
                "--runner",
                "DirectRunner",
                "--direct_running_mode",
                "in_memory",
                "--save",
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        "p95"
        in saved_statistics(tmp_path / "cli")["splits"]["train"]["features"]["observation/position"]
    )
