"""The jobs' data-parallel parts as composite PTransforms in a user's own pipeline
(TestPipeline on the DirectRunner), checked against the jobs' own output; and the jobs'
Output and Run values."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from rlds_hub.beam import (
    AssignSplits,
    ComputeStatistics,
    ConvertSource,
    EpisodeFilter,
    ExportParquet,
    FilterEpisodes,
    Output,
    ReadEpisodes,
    RecordEpisodes,
    Run,
    Sharding,
    WriteSession,
)
from rlds_hub.beam.jobs.convert import convert
from rlds_hub.beam.jobs.export import export
from rlds_hub.beam.jobs.filter import filter_dataset
from rlds_hub.beam.jobs.reshard import reshard
from rlds_hub.beam.jobs.split import split_dataset
from rlds_hub.beam.jobs.stats import compute_statistics
from rlds_hub.beam.recording import record_dataset
from rlds_hub.storage import iter_records, open_dataset, select_splits

FLAGS = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
RUN = Run(beam_args=FLAGS)


def _pipeline() -> test_pipeline.TestPipeline:
    return test_pipeline.TestPipeline(argv=FLAGS, blocking=True)


def _d4rl(path: Path, n: int = 23) -> Path:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["observations"] = rng.standard_normal((n, 4))
        f["next_observations"] = rng.standard_normal((n, 4))
        f["actions"] = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        f["rewards"] = rng.standard_normal(n).astype(np.float32)
        terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
        terminals[[4, 15]], timeouts[[9]] = True, True
        f["terminals"], f["timeouts"] = terminals, timeouts
        f.attrs["env_name"] = "hopper-medium-v2"
    return path


def _records(path: Path) -> dict[str, list[bytes]]:
    dataset = open_dataset(path)
    return {s: [bytes(r.data) for r in iter_records(dataset, s)] for s in dataset.splits}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("composites")
    source = _d4rl(root / "hopper.hdf5")
    convert(source, Output(root / "job", sharding=Sharding(num_shards=2)), run=RUN)
    return source, root / "job"


def test_convert_source_in_a_users_pipeline_writes_the_jobs_records(converted, tmp_path):
    source, job_output = converted
    convert_source = ConvertSource(source, split="train")
    with WriteSession(tmp_path / "mine") as session:
        with _pipeline() as p:
            _ = p | convert_source | session.write("hopper", sharding=Sharding(num_shards=2))
        session.finish(
            name="hopper",
            features_json=convert_source.features_json,
            metadata={"layout": convert_source.description.layout},
            file_format="tfrecord",
        )
    assert convert_source.num_episodes == 4
    assert open_dataset(tmp_path / "mine").features_json == open_dataset(job_output).features_json
    assert _records(tmp_path / "mine") == _records(job_output)


@pytest.mark.slow
def test_read_episodes_then_assign_splits_writes_what_the_split_job_writes(converted, tmp_path):
    _, dataset_path = converted
    split_dataset(dataset_path, tmp_path / "job", fractions="a=0.5,b=0.5", seed=3, run=RUN)
    dataset = open_dataset(dataset_path)
    with WriteSession(tmp_path / "mine") as session:
        with _pipeline() as p:
            _ = (
                p
                | ReadEpisodes(select_splits(dataset, "train"))
                | AssignSplits({"a": 0.5, "b": 0.5}, seed=3)
                | session.write(dataset.name, split_order=["a", "b"])
            )
        session.finish(
            name=dataset.name,
            features_json=dataset.features_json,
            metadata={},
            file_format="tfrecord",
            split_order=["a", "b"],
        )
    assert _records(tmp_path / "mine") == _records(tmp_path / "job")


@pytest.mark.slow
def test_compute_statistics_in_a_users_pipeline_equals_the_stats_job(converted):
    _, dataset_path = converted
    expected = compute_statistics(dataset_path, save=False, run=RUN)
    selections = select_splits(open_dataset(dataset_path), "train")
    with _pipeline() as p:
        results = p | ComputeStatistics(selections)
        assert_that(results, equal_to(expected))
    assert expected[0]["features"]["observation"]["p50"] is not None


def _close(mine, theirs, where="result"):
    """Equal, floats to rounding (partials merged in other groups)."""
    if isinstance(mine, dict):
        assert mine.keys() == theirs.keys(), where
        for key in mine:
            _close(mine[key], theirs[key], f"{where}.{key}")
    elif isinstance(mine, list):
        assert len(mine) == len(theirs), where
        for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            _close(a, b, f"{where}[{i}]")
    elif isinstance(mine, float):
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, err_msg=where)
    else:
        assert mine == theirs, where


@pytest.mark.slow
def test_read_episodes_then_compute_statistics_agrees_with_the_stats_job(converted, tmp_path):
    _, dataset_path = converted
    dataset = open_dataset(dataset_path)
    expected = compute_statistics(dataset_path, save=False, run=RUN)
    with _pipeline() as p:
        results = (
            p
            | ReadEpisodes(select_splits(dataset, "train"))
            | ComputeStatistics(dataset)
            | beam.combiners.ToList()
        )
        assert_that(results, lambda got: _close(got[0], expected))
    # a filtered stream: the statistics of the episodes that pass
    filter_dataset(dataset_path, tmp_path / "long", min_length=7, run=RUN)
    long = compute_statistics(tmp_path / "long", save=False, run=RUN)
    with _pipeline() as p:
        results = (
            p
            | ReadEpisodes(select_splits(dataset, "train"))
            | FilterEpisodes(EpisodeFilter(filters={"min_length": 7}))
            | ComputeStatistics(dataset)
            | beam.combiners.ToList()
        )
        assert_that(results, lambda got: _close(got[0], long))
    assert long[0]["num_episodes"] == 2


def test_compute_statistics_of_a_dataset_needs_episodes(converted):
    dataset = open_dataset(converted[1])
    with pytest.raises(ValueError, match="apply it to ReadEpisodes"), _pipeline() as p:
        _ = p | ComputeStatistics(dataset)


def test_compute_statistics_refuses_selections_it_cannot_merge(converted):
    _, dataset_path = converted
    dataset = open_dataset(dataset_path)
    with pytest.raises(ValueError, match="named twice"):
        ComputeStatistics(select_splits(dataset, "train") * 2)
    with pytest.raises(ValueError, match="no step feature 'nope'"):
        ComputeStatistics(select_splits(dataset, "train"), keys=["nope"])


def test_export_parquet_in_a_users_pipeline_writes_the_jobs_tables(converted, tmp_path):
    _, dataset_path = converted
    export(dataset_path, tmp_path / "job", run=RUN)
    with _pipeline() as p:
        parts = p | ExportParquet(
            select_splits(open_dataset(dataset_path), "train"), tmp_path / "mine"
        )
        assert_that(
            parts | beam.Map(lambda part: part["steps"]),
            equal_to(["steps/part-00000.parquet", "steps/part-00001.parquet"]),  # one per shard
        )
    for table in ("steps", "episodes"):
        mine = pq.read_table(tmp_path / "mine" / table)
        assert mine.equals(pq.read_table(tmp_path / "job" / table))


@pytest.mark.slow
def test_record_episodes_in_a_users_pipeline_records_what_the_job_records(tmp_path):
    record_dataset(
        "gym/CartPole-v1",
        tmp_path / "job",
        policy="random",
        episodes=3,
        episodes_per_unit=2,
        run=RUN,
    )
    recording = RecordEpisodes("gym/CartPole-v1", policy="random", episodes=3, episodes_per_unit=2)
    with WriteSession(tmp_path / "mine") as session:
        with _pipeline() as p:
            _ = p | recording | session.write("job")
        session.finish(
            name="job", features_json=recording.features_json, metadata={}, file_format="tfrecord"
        )
    assert _records(tmp_path / "mine") == _records(tmp_path / "job")


# ---- Output and Run -------------------------------------------------------------------


def test_output_carries_the_shard_limits_format_and_name(converted, tmp_path):
    _, dataset_path = converted
    summary = reshard(
        dataset_path,
        Output(
            tmp_path / "out",
            sharding=Sharding(max_episodes_per_shard=1),
            file_format="array_record",
            name="renamed",
        ),
        run=RUN,
    )
    dataset = open_dataset(tmp_path / "out")
    assert (dataset.name, dataset.file_format, summary["shards"]) == ("renamed", "array_record", 4)
    with pytest.raises(ValueError, match="overwrite"):
        reshard(dataset_path, tmp_path / "out", run=RUN)
    reshard(dataset_path, Output(tmp_path / "out", overwrite=True), run=RUN)
    assert open_dataset(tmp_path / "out").file_format == "tfrecord"


def test_a_job_refuses_an_output_field_it_cannot_honour(converted, tmp_path):
    _, dataset_path = converted
    with pytest.raises(ValueError, match=r"export does not use Output\.sharding"):
        export(dataset_path, Output(tmp_path / "a", sharding=Sharding(num_shards=2)), run=RUN)
    with pytest.raises(ValueError, match=r"reshard does not use Output\.image_encoding"):
        reshard(dataset_path, Output(tmp_path / "b", image_encoding="raw"), run=RUN)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_output_and_run_refuse_bad_values_saying_what_is_allowed():
    with pytest.raises(ValueError, match=r"file_format must be one of \('tfrecord'"):
        Output("out", file_format="parquet")
    with pytest.raises(ValueError, match=r"image_encoding must be one of \('png', 'raw'\)"):
        Output("out", image_encoding="jpeg")
    with pytest.raises(TypeError, match="sharding must be"):
        Output("out", sharding=4)
    with pytest.raises(TypeError, match="list of flags"):
        Run(beam_args="--runner=DaskRunner")


def test_run_flags():
    default = Run().flags()
    assert "--direct_running_mode=multi_processing" in default
    dask = Run(runner="DaskRunner", beam_args=["--dask_client_address=h:1"]).flags()
    assert dask[0].endswith("DaskRunner") and "--dask_client_address=h:1" in dask
    assert Run(beam_args=FLAGS).flags()[: len(FLAGS)] == FLAGS
