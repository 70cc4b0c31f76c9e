"""Every job on a real distributed engine: Beam's DaskRunner (by its short name) on a
dask.distributed LocalCluster of two worker processes gives exactly the DirectRunner's
output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlds_hub.beam.job_values import Output, Run
from rlds_hub.beam.jobs.convert import convert
from rlds_hub.beam.jobs.export import export
from rlds_hub.beam.jobs.filter import filter_dataset
from rlds_hub.beam.jobs.map import map_dataset
from rlds_hub.beam.jobs.merge import merge
from rlds_hub.beam.jobs.reshard import reshard
from rlds_hub.beam.jobs.split import split_dataset
from rlds_hub.beam.jobs.stats import compute_statistics
from rlds_hub.beam.sink import Sharding
from rlds_hub.inspection.validate import validate
from rlds_hub.storage import open_dataset
from rlds_hub.testing.beam_jobs import FAST, dataset_files, record_nested

distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def cluster():
    # No Client of the test's own: a second Client in the process races the DaskRunner's on
    # tornado's event loop (an AssertionError in iostream, then a hang).
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local.scheduler_address, local.scheduler


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    record_nested(root / "robot", episodes=8, per_shard=2)
    record_nested(root / "robot2", episodes=5, per_shard=2, seed=5)
    record_nested(root / "logs" / "a", episodes=4, per_shard=2, file_format="riegeli", seed=3)
    record_nested(root / "logs" / "b", episodes=3, per_shard=2, file_format="riegeli", seed=4)
    return root


def _dask(cluster):
    return ["--runner=DaskRunner", f"--dask_client_address={cluster[0]}"]


def scale_reward(episode):
    steps = dict(episode["steps"])
    steps["reward"] = steps["reward"] * 0.5
    return {**episode, "steps": steps}


@pytest.mark.slow
def test_convert_runs_on_both_dask_workers_and_equals_the_direct_runner(cluster, source, tmp_path):
    from distributed.diagnostics.task_stream import TaskStreamPlugin

    stream = TaskStreamPlugin(cluster[1])  # the in-process scheduler records every task
    cluster[1].add_plugin(stream, name="rlds-hub-task-stream")
    convert(
        source / "logs", tmp_path / "dask", episodes_per_unit=1, run=Run(beam_args=_dask(cluster))
    )
    workers = {task["worker"] for task in stream.buffer}
    assert len(workers) == 2, workers  # the units were spread over both processes
    convert(source / "logs", tmp_path / "direct", episodes_per_unit=1, run=Run(beam_args=FAST))
    assert dataset_files(tmp_path / "dask") == dataset_files(tmp_path / "direct")
    assert validate(open_dataset(tmp_path / "dask"), tensorflow=False).ok


# filter keeps the Dask runner in make test-fast; the other jobs (each 3-10 s there) run in
# make test, and test_beam_jobs.py covers them on the direct runner in both.
@pytest.mark.parametrize(
    "job",
    [
        pytest.param(job, marks=pytest.mark.slow) if job != "filter" else job
        for job in ["reshard", "filter", "map", "merge", "split"]
    ],
)
def test_dataset_jobs_on_dask_equal_the_direct_runner(cluster, source, tmp_path, job):
    robot = source / "robot"
    runs = {
        "reshard": lambda out, flags: reshard(
            robot,
            Output(out, sharding=Sharding(num_shards=3), file_format="array_record"),
            run=Run(beam_args=flags),
        ),
        "filter": lambda out, flags: filter_dataset(
            robot, out, fraction=0.6, seed=1, run=Run(beam_args=flags)
        ),
        "map": lambda out, flags: map_dataset(
            robot, out, episode_fn=scale_reward, run=Run(beam_args=flags)
        ),
        "merge": lambda out, flags: merge(
            [robot, source / "robot2"], out, run=Run(beam_args=flags)
        ),
        "split": lambda out, flags: split_dataset(
            robot, out, fractions="a=0.5,b=0.5", run=Run(beam_args=flags)
        ),
    }
    runs[job](tmp_path / "dask", _dask(cluster))
    runs[job](tmp_path / "direct", FAST)
    assert dataset_files(tmp_path / "dask") == dataset_files(tmp_path / "direct")
    assert open_dataset(tmp_path / "dask").num_episodes > 0


@pytest.mark.slow
def test_stats_and_export_on_dask_equal_the_direct_runner(cluster, source, tmp_path):
    import pyarrow.parquet as pq

    dask_stats = compute_statistics(source / "robot", save=False, run=Run(beam_args=_dask(cluster)))
    direct_stats = compute_statistics(source / "robot", save=False, run=Run(beam_args=FAST))
    assert json.dumps(dask_stats) == json.dumps(direct_stats)
    export(source / "robot", tmp_path / "dask", run=Run(beam_args=_dask(cluster)))
    export(source / "robot", tmp_path / "direct", run=Run(beam_args=FAST))
    for table in ("steps", "episodes"):
        a = pq.read_table(tmp_path / "dask" / table)
        b = pq.read_table(tmp_path / "direct" / table)
        assert a.equals(b)
    assert np.isfinite(direct_stats[0]["lengths"]["mean"])
