"""Jobs writing to a real S3 server (moto's, on loopback, started by the tests): a reshard and a
filter into a bucket write exactly what the same job writes locally, and a job killed in the
middle of its commit leaves a bucket a reader treats as absent or complete, which
``validate --repair`` or the next run cleans. The protocol step by step:
tests/storage/test_remote_commit_protocol.py."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from rlds_hub.beam.job_values import Output, Run
from rlds_hub.beam.jobs.export import export
from rlds_hub.beam.jobs.filter import filter_dataset
from rlds_hub.beam.jobs.reshard import reshard
from rlds_hub.beam.sink import EmptyOutputError, Sharding
from rlds_hub.storage import remote_commit
from rlds_hub.storage.dataset import open_dataset
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.reader import iter_episodes
from rlds_hub.storage.remote_commit import local_staging
from rlds_hub.storage.repair import repair
from rlds_hub.testing.beam_jobs import FAST, dataset_files, metadata, record_nested
from rlds_hub.testing.comparisons import assert_bit_equal
from rlds_hub.testing.object_store import S3Server

# make test-fast leaves these out (jobs against moto's S3 server, ~20 s in all); make test runs them.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SHARDING = Sharding(num_shards=2)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote_commit") / "source"
    record_nested(path, episodes=5, lengths=(3, 4, 6))
    return path


@pytest.fixture
def bucket(s3):
    return s3.create_bucket(f"commit-{uuid.uuid4().hex[:10]}")


def _keys(url: str) -> list[str]:
    fs, path = remote_commit.filesystem(url)
    return sorted(remote_commit.objects(fs, path))


def _download(url: str, local: Path) -> Path:
    """The objects under ``url`` copied into the new directory ``local``."""
    fs, path = remote_commit.filesystem(url)
    for key in remote_commit.objects(fs, path):
        (local / key).parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(f"{path}/{key}", str(local / key))
    return local


def _no_staging(bucket: str, url: str) -> bool:
    """No staging prefix in the bucket, and no local staging directory of ``url`` left."""
    local = local_staging(url)
    assert local.parent.is_dir()  # where jobs stage their local work
    return not [k for k in _keys(bucket) if ".tmp-" in k] and not list(local.glob(".tmp-*"))


def test_a_reshard_into_a_bucket_writes_what_the_local_run_writes(source, bucket, tmp_path):
    url = f"{bucket}/datasets/resharded"
    summary = reshard(source, Output(url, sharding=SHARDING), run=Run(beam_args=FAST))
    assert summary["path"] == url and summary["shards"] == 2
    reshard(source, Output(tmp_path / "local", sharding=SHARDING), run=Run(beam_args=FAST))
    uploaded = _download(url, tmp_path / "uploaded")
    local = dataset_files(tmp_path / "local")
    assert dataset_files(uploaded) == local  # shards, index, checksums, info: byte for byte
    assert len([n for n in local if ".tfrecord-" in n]) == 2
    assert _no_staging(bucket, url)


def _episodes(path: str | Path) -> list:
    dataset = open_dataset(path)
    return [
        episode for split in sorted(dataset.splits) for episode in iter_episodes(dataset, split)
    ]


def test_a_reshard_from_a_bucket_into_a_bucket_reads_back_value_for_value(
    source, s3, bucket, tmp_path
):
    uploaded = s3.upload_directory(source, f"{bucket}/datasets/source")
    url = f"{bucket}/datasets/copy"
    reshard(uploaded, Output(url, sharding=SHARDING), run=Run(beam_args=FAST))
    reshard(source, Output(tmp_path / "local", sharding=SHARDING), run=Run(beam_args=FAST))
    local = dataset_files(tmp_path / "local")
    assert dataset_files(_download(url, tmp_path / "uploaded")) == local
    (source_entry,) = metadata(tmp_path / "uploaded")["provenance"]["sources"]
    assert source_entry["path"] == uploaded  # the input's URL, as given
    from_bucket, from_disk = _episodes(url), _episodes(tmp_path / "local")
    assert len(from_bucket) == 5
    for expected, actual in zip(from_disk, from_bucket, strict=True):
        assert_bit_equal(expected, actual)
    assert _no_staging(bucket, url)


def test_a_filter_into_a_bucket_writes_what_the_local_run_writes(source, bucket, tmp_path):
    url = f"{bucket}/filtered"
    summary = filter_dataset(source, url, min_length=5, run=Run(beam_args=FAST))
    assert 0 < summary["splits"]["train"] < 5
    filter_dataset(source, tmp_path / "local", min_length=5, run=Run(beam_args=FAST))
    uploaded = _download(url, tmp_path / "uploaded")
    assert dataset_files(uploaded) == dataset_files(tmp_path / "local")
    assert _no_staging(bucket, url)


def test_an_export_into_a_bucket_writes_what_the_local_run_writes(source, bucket, tmp_path):
    url = f"{bucket}/tables"
    export(source, url, run=Run(beam_args=FAST))
    export(source, tmp_path / "local", run=Run(beam_args=FAST))
    uploaded = _download(url, tmp_path / "uploaded")
    parts = sorted(p.relative_to(uploaded) for p in uploaded.rglob("*.parquet"))
    assert parts == sorted(
        p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.parquet")
    )
    assert parts and all(
        (uploaded / p).read_bytes() == (tmp_path / "local" / p).read_bytes() for p in parts
    )
    assert (uploaded / "export.json").is_file() and _no_staging(bucket, url)


def test_an_overwrite_in_a_bucket_replaces_the_whole_dataset(source, bucket, tmp_path):
    url = f"{bucket}/out"
    reshard(source, Output(url, sharding=Sharding(num_shards=3)), run=Run(beam_args=FAST))
    with pytest.raises(DatasetError, match="already holds a dataset; pass --overwrite"):
        reshard(source, url, run=Run(beam_args=FAST))
    reshard(
        source, Output(url, overwrite=True, file_format="array_record"), run=Run(beam_args=FAST)
    )
    shards = [k for k in _keys(url) if "record-" in k]
    assert shards == ["source-train.array_record-00000"]  # no shard of the old dataset is left


def test_a_failed_job_leaves_nothing_in_the_bucket(source, bucket):
    url = f"{bucket}/empty"
    with pytest.raises(EmptyOutputError, match="selected no episodes"):
        filter_dataset(source, url, min_length=1000, run=Run(beam_args=FAST))
    assert _keys(bucket) == [] and _no_staging(bucket, url)


def test_a_missing_bucket_is_refused_before_the_job_runs(source, s3):
    with pytest.raises(DatasetError, match="bucket 'no-such-bucket-hf' does not exist"):
        reshard(source, "s3://no-such-bucket-hf/out", run=Run(beam_args=FAST))


def test_refused_credentials_are_a_clear_error_before_the_job_runs(source):
    server = S3Server(authenticate=True)  # unknown keys get 403 InvalidAccessKeyId
    try:
        with server.activate(), pytest.raises(DatasetError, match="access was refused"):
            reshard(source, "s3://any-bucket/out", run=Run(beam_args=FAST))
    finally:
        server.stop()


def _killed_job(source: Path, url: str, step: str, *, overwrite: bool = False) -> None:
    """Runs ``rlds-hub reshard`` into ``url`` in a process that SIGKILLs itself at ``step``
    of its commit."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlds_hub.cli",
            "reshard",
            "--input",
            str(source),
            "--output",
            url,
            "--num-shards",
            "2",
            "--quiet",
            *(["--overwrite"] if overwrite else []),
            *FAST,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), remote_commit.KILL_AT: step},
        timeout=300,
    )
    assert result.returncode == -9, result.stderr  # killed, not failed


def _assert_absent(url: str) -> None:
    """A reader finds no dataset at ``url``, and says why."""
    assert "dataset_info.json" not in _keys(url)
    with pytest.raises(DatasetError, match="is not a complete dataset: it holds"):
        open_dataset(url)


@pytest.mark.slow
def test_a_job_killed_mid_commit_leaves_no_dataset_and_repair_finishes_it(source, bucket, tmp_path):
    url = f"{bucket}/killed"
    _killed_job(source, url, "promoting")  # shards copied, marker not yet
    assert [k for k in _keys(url) if ".tfrecord-" in k]  # a partial prefix...
    _assert_absent(url)  # ...that no reader takes for a dataset
    assert list(local_staging(url).glob(".tmp-killed-*"))  # the killed job's local work
    report = repair(url)
    assert report.ok and len(report.actions) == 2
    assert "the unfinished work of a job that died" in report.actions[0]
    assert report.actions[1] == (
        f"completed an interrupted commit: the finished result is now at {url}"
    )
    reshard(source, Output(tmp_path / "local", sharding=SHARDING), run=Run(beam_args=FAST))
    assert dataset_files(_download(url, tmp_path / "repaired")) == dataset_files(tmp_path / "local")
    assert _no_staging(bucket, url)


@pytest.mark.slow
def test_a_job_killed_before_its_commit_is_cleaned_by_the_next_run(source, bucket, tmp_path, capfd):
    url = f"{bucket}/killed"
    reshard(source, Output(url, sharding=Sharding(num_shards=3)), run=Run(beam_args=FAST))
    before = dataset_files(_download(url, tmp_path / "before"))
    _killed_job(source, url, "uploaded", overwrite=True)  # uploaded, not yet decided
    assert dataset_files(_download(url, tmp_path / "after")) == before  # untouched
    assert [k for k in _keys(bucket) if ".tmp-killed-" in k]  # the dead job's upload
    capfd.readouterr()
    reshard(source, Output(url, overwrite=True, sharding=SHARDING), run=Run(beam_args=FAST))
    assert "the unfinished upload of a job that died" in capfd.readouterr().err
    assert _no_staging(bucket, url)
    assert len([k for k in _keys(url) if ".tfrecord-" in k]) == 2
