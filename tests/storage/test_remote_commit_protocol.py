"""The object-store commit (rlds_hub.storage.remote_commit) on fsspec's memory file system:
the marker is written last and removed first, an existing dataset is replaced only after the
new one is uploaded, a commit crashed at any step leaves an output a reader treats as absent
or complete, and recovery finishes a decided commit or removes a dead job's upload. The same
protocol against a real S3 server: tests/beam/test_remote_commit.py."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import fsspec
import pytest

from rlds_hub.beam.staging import Staging
from rlds_hub.storage import remote_commit
from rlds_hub.storage.remote_commit import RemoteConflictError, RemoteOutput, RemoteOutputError
from rlds_hub.storage.repair import repair

MEMORY = fsspec.filesystem("memory")


class Crash(BaseException):
    """Stands for SIGKILL at a commit step (in-process)."""


def _dead(fs, staging):
    return False, ""


@pytest.fixture
def bucket():
    name = f"bucket-{uuid.uuid4().hex[:8]}"
    MEMORY.mkdir(f"/{name}")
    yield f"memory://{name}"
    MEMORY.rm(f"/{name}", recursive=True)


def _objects(url: str) -> dict[str, bytes]:
    fs, path = remote_commit.filesystem(url)
    return {key: fs.cat(f"{path}/{key}") for key in remote_commit.objects(fs, path)}


def _finished(tmp_path: Path, tag: str, shards: tuple[str, ...] = ("d-train.tfrecord-00000",)):
    local = tmp_path / f"local-{tag}"
    local.mkdir()
    for shard in shards:
        (local / shard).write_bytes(f"{tag}:{shard}".encode() * 100)
    (local / "features.json").write_text("{}")
    (local / "dataset_info.json").write_text(json.dumps({"tag": tag}))
    return local


def _tag(url: str) -> str | None:
    objects = _objects(url)
    if "dataset_info.json" not in objects:
        return None
    return json.loads(objects["dataset_info.json"])["tag"]


def _complete(url: str, tag: str, shards: tuple[str, ...]) -> bool:
    """``url`` holds exactly the dataset ``tag``, every shard of it and nothing else."""
    objects = _objects(url)
    want = {s: f"{tag}:{s}".encode() * 100 for s in shards}
    return (
        _tag(url) == tag
        and {k: v for k, v in objects.items() if k in want} == want
        and set(objects) == {*want, "features.json", "dataset_info.json"}
    )


def _crash_at(monkeypatch, step: str) -> None:
    """The next commit crashes at ``step`` (once: recovery then runs normally)."""
    crashed = []

    def checkpoint(name: str) -> None:
        if name == step and not crashed:
            crashed.append(name)
            raise Crash(step)

    monkeypatch.setattr(remote_commit, "_checkpoint", checkpoint)


def _commit(url: str, local: Path, *, overwrite: bool = False) -> RemoteOutput:
    output = RemoteOutput(url, overwrite=overwrite)
    output.start(uuid.uuid4().hex[:12])
    output.commit(local)
    return output


def test_a_commit_publishes_every_file_and_leaves_no_staging(bucket, tmp_path):
    url = f"{bucket}/data/out"
    _commit(url, _finished(tmp_path, "new"))
    assert _complete(url, "new", ("d-train.tfrecord-00000",))
    assert sorted(_objects(bucket)) == [
        "data/out/d-train.tfrecord-00000",
        "data/out/dataset_info.json",
        "data/out/features.json",
    ]


def test_the_marker_is_written_after_every_other_file(bucket, tmp_path, monkeypatch):
    url = f"{bucket}/out"
    order = []
    copy = type(MEMORY).copy

    def recording_copy(self, source, target, **kwargs):
        order.extend(
            os.path.basename(t) for t in (target if isinstance(target, list) else [target])
        )
        return copy(self, source, target, **kwargs)

    monkeypatch.setattr(type(MEMORY), "copy", recording_copy)
    _commit(url, _finished(tmp_path, "new", ("d-train.tfrecord-00000", "d-train.tfrecord-00001")))
    assert order[-1] == "dataset_info.json" and len(order) == 4


def test_an_exports_markers_are_written_last(bucket, tmp_path, monkeypatch):
    """A LeRobot export: LeRobot opens meta/info.json, rlds_hub export.json; both come last."""
    local = tmp_path / "export"
    (local / "meta").mkdir(parents=True)
    (local / "data").mkdir()
    (local / "meta" / "info.json").write_text("{}")
    (local / "meta" / "tasks.parquet").write_bytes(b"tasks")
    (local / "data" / "file-000.parquet").write_bytes(b"frames")
    (local / "export.json").write_text("{}")
    order = []
    copy = type(MEMORY).copy

    def recording_copy(self, source, target, **kwargs):
        order.extend(
            t.split("/out/")[1] for t in (target if isinstance(target, list) else [target])
        )
        return copy(self, source, target, **kwargs)

    monkeypatch.setattr(type(MEMORY), "copy", recording_copy)
    _commit(f"{bucket}/out", local)
    assert order[-2:] == ["meta/info.json", "export.json"] and len(order) == 4


@pytest.mark.parametrize("step", ["uploaded", "ready", "promoting"])
def test_a_crashed_first_commit_is_absent_then_recovered(bucket, tmp_path, monkeypatch, step):
    url = f"{bucket}/out"
    shards = ("d-train.tfrecord-00000", "d-train.tfrecord-00001")
    _crash_at(monkeypatch, step)
    with pytest.raises(Crash):
        _commit(url, _finished(tmp_path, "new", shards))
    assert _tag(url) is None  # a reader finds no dataset, never a partial one
    done = remote_commit.recover(url, alive=_dead)
    assert len(done) == 1
    if step == "uploaded":  # not decided: the dead job's upload is removed
        assert "unfinished upload of a job that died" in done[0]
        assert _objects(bucket) == {}
    else:  # decided: finished
        assert "completed an interrupted commit" in done[0]
        assert _complete(url, "new", shards)
        assert all(k.startswith("out/") for k in _objects(bucket))


@pytest.mark.parametrize("step", ["uploaded", "ready", "promoting"])
def test_an_overwrite_crashed_at_any_step_is_old_absent_or_new(bucket, tmp_path, monkeypatch, step):
    url = f"{bucket}/out"
    old_shards = ("d-train.tfrecord-00000", "d-train.tfrecord-00001", "d-test.tfrecord-00000")
    new_shards = ("d-train.tfrecord-00000",)
    _commit(url, _finished(tmp_path, "old", old_shards))
    _crash_at(monkeypatch, step)
    with pytest.raises(Crash):
        _commit(url, _finished(tmp_path, "new", new_shards), overwrite=True)
    if step == "promoting":  # the old marker is gone before any old file was replaced
        assert _tag(url) is None
    else:  # nothing of the output was touched before the commit was decided
        assert _complete(url, "old", old_shards)
    remote_commit.recover(url, alive=_dead)
    if step == "uploaded":
        assert _complete(url, "old", old_shards)
    else:
        assert _complete(url, "new", new_shards)  # the old dataset's extra shards are gone
    assert all(k.startswith("out/") for k in _objects(bucket))


def test_recovery_never_replaces_a_dataset_that_arrived_after_the_crash(
    bucket, tmp_path, monkeypatch
):
    url = f"{bucket}/out"
    _crash_at(monkeypatch, "ready")  # decided for an empty output, then killed
    with pytest.raises(Crash):
        _commit(url, _finished(tmp_path, "crashed"))
    later = _finished(tmp_path, "later")  # someone uploaded a dataset there meanwhile
    for path in later.iterdir():
        MEMORY.pipe(f"/{bucket.split('//')[1]}/out/{path.name}", path.read_bytes())
    (done,) = remote_commit.recover(url, alive=_dead)
    assert "kept the finished result of an interrupted job in" in done
    assert _complete(url, "later", ("d-train.tfrecord-00000",))
    kept = done.split(" in ", 1)[1].split(" (")[0]
    assert _complete(kept, "crashed", ("d-train.tfrecord-00000",))


def test_a_crash_while_removing_the_staging_prefix_is_cleaned_up(bucket, tmp_path, monkeypatch):
    url = f"{bucket}/out"
    remove = remote_commit._remove_prefix

    def crash_on_staging(fs, prefix):
        if ".tmp-" in prefix:
            raise Crash("cleanup")
        remove(fs, prefix)

    monkeypatch.setattr(remote_commit, "_remove_prefix", crash_on_staging)
    with pytest.raises(Crash):
        _commit(url, _finished(tmp_path, "new"))
    monkeypatch.setattr(remote_commit, "_remove_prefix", remove)
    assert _complete(url, "new", ("d-train.tfrecord-00000",))
    (left,) = _staging_names(bucket)
    assert remote_commit.recover(url, alive=_dead) == [
        f"removed memory:///{bucket.split('//')[1]}/{left}, left by a commit that had completed"
    ]
    assert _complete(url, "new", ("d-train.tfrecord-00000",))
    assert all(k.startswith("out/") for k in _objects(bucket))


def _staging_names(bucket: str) -> list[str]:
    fs, path = remote_commit.filesystem(bucket)
    return sorted({p.split("/")[2] for p in fs.find(path) if "/.tmp-" in p})


def test_a_live_jobs_upload_is_left_alone(bucket, tmp_path):
    url = f"{bucket}/out"
    output = RemoteOutput(url)
    output.start(uuid.uuid4().hex[:12])  # this process: alive
    assert remote_commit.recover(url) == []
    assert ".owner" in "".join(_objects(bucket))
    output.abort()
    assert _objects(bucket) == {}


def test_another_hosts_upload_is_reported_not_deleted(bucket, tmp_path):
    url = f"{bucket}/out"
    output = RemoteOutput(url)
    output.start(uuid.uuid4().hex[:12])
    done = remote_commit.recover(url, alive=lambda fs, staging: (True, "elsewhere"))
    assert len(done) == 1 and "a job on host elsewhere" in done[0]
    assert ".owner" in "".join(_objects(bucket))


def test_an_existing_dataset_is_refused_without_overwrite(bucket, tmp_path):
    url = f"{bucket}/out"
    _commit(url, _finished(tmp_path, "old"))
    with pytest.raises(RemoteOutputError, match="already holds a dataset; pass --overwrite"):
        RemoteOutput(url).start(uuid.uuid4().hex[:12])


def test_objects_without_a_dataset_are_never_replaced(bucket, tmp_path):
    url = f"{bucket}/out"
    MEMORY.pipe(f"/{bucket.split('//')[1]}/out/d-train.tfrecord-00000", b"partial copy")
    for overwrite in (False, True):
        with pytest.raises(RemoteOutputError, match=r"holds 1 object\(s\) but no dataset"):
            RemoteOutput(url, overwrite=overwrite).start(uuid.uuid4().hex[:12])


def test_a_missing_bucket_is_a_clear_error():
    with pytest.raises(RemoteOutputError, match="the bucket 'no-such-bucket' does not exist"):
        RemoteOutput("memory://no-such-bucket/out").start(uuid.uuid4().hex[:12])


def test_a_bucket_root_is_refused():
    with pytest.raises(RemoteOutputError, match="needs a prefix inside a bucket"):
        RemoteOutput("memory://bucket-root")


def test_an_output_taken_while_the_job_ran_keeps_the_result_aside(bucket, tmp_path):
    url = f"{bucket}/out"
    loser = RemoteOutput(url)
    loser.start(uuid.uuid4().hex[:12])
    _commit(url, _finished(tmp_path, "winner"))
    with pytest.raises(RemoteConflictError, match="appeared while the job ran") as caught:
        loser.commit(_finished(tmp_path, "loser"))
    assert _tag(url) == "winner"
    assert _complete(caught.value.kept, "loser", ("d-train.tfrecord-00000",))


def test_an_overwrite_replaces_only_the_dataset_that_was_there(bucket, tmp_path):
    url = f"{bucket}/out"
    _commit(url, _finished(tmp_path, "old"))
    job = RemoteOutput(url, overwrite=True)
    job.start(uuid.uuid4().hex[:12])
    MEMORY.pipe(f"/{bucket.split('//')[1]}/out/notes.txt", b"someone's notes")
    with pytest.raises(RemoteConflictError, match=r"notes\.txt appeared or changed"):
        job.commit(_finished(tmp_path, "new"))
    assert _tag(url) == "old" and "notes.txt" in _objects(url)


def test_a_short_upload_publishes_nothing(bucket, tmp_path, monkeypatch):
    url = f"{bucket}/out"
    put = type(MEMORY).put

    def truncating_put(self, sources, targets, **kwargs):
        put(self, sources, targets, **kwargs)
        self.pipe(targets[-1], b"cut")  # one object arrived short (a broken upload)

    monkeypatch.setattr(type(MEMORY), "put", truncating_put)
    with pytest.raises(RemoteOutputError, match=r"gave 3 bytes of \d+; nothing was published"):
        _commit(url, _finished(tmp_path, "new"))
    assert _tag(url) is None and not [k for k in _objects(bucket) if k.startswith("out/")]


def test_a_directory_without_a_marker_is_not_uploaded(bucket, tmp_path):
    local = tmp_path / "nothing"
    local.mkdir()
    (local / "features.json").write_text("{}")
    job = RemoteOutput(f"{bucket}/out")
    job.start(uuid.uuid4().hex[:12])
    with pytest.raises(RemoteOutputError, match="not a finished dataset; nothing was uploaded"):
        job.commit(local)


def test_staging_commits_a_job_to_a_bucket_and_abort_removes_its_upload(bucket):
    url = f"{bucket}/out"
    staging = Staging(url)
    assert (
        staging.path.is_dir()
        and staging.output == f"{bucket.replace('memory://', 'memory:///')}/out"
    )
    staging.abort()
    assert not staging.path.exists() and _objects(bucket) == {}
    staging = Staging(url)
    (staging.path / "features.json").write_text("{}")
    (staging.path / "dataset_info.json").write_text(json.dumps({"tag": "job"}))
    (staging.pieces / "piece").write_bytes(b"working file")
    assert staging.commit() == staging.output
    assert not staging.path.exists()
    assert set(_objects(url)) == {"features.json", "dataset_info.json"}  # no working files


def test_abort_keeps_a_decided_commit_for_recovery(bucket, tmp_path, monkeypatch):
    url = f"{bucket}/out"
    _crash_at(monkeypatch, "promoting")
    job = RemoteOutput(url)
    job.start(uuid.uuid4().hex[:12])
    with pytest.raises(Crash):
        job.commit(_finished(tmp_path, "new"))
    job.abort()  # what a job's `with` block does on the way out
    assert "completed an interrupted commit" in remote_commit.recover(url, alive=_dead)[0]
    assert _tag(url) == "new"


def test_a_job_output_overlapping_its_input_is_refused(bucket):
    with pytest.raises(Exception, match="overlaps the input"):
        Staging(f"{bucket}/data/out", inputs=[f"{bucket}/data"])


def test_repair_of_a_bucket_finishes_a_commit_and_reports_partial_copies(
    bucket, tmp_path, monkeypatch
):
    url = f"{bucket}/out"
    _crash_at(monkeypatch, "ready")
    with pytest.raises(Crash):
        _commit(url, _finished(tmp_path, "new"))
    monkeypatch.setattr(remote_commit, "_owner_alive", _dead)
    monkeypatch.setattr(remote_commit.recover, "__kwdefaults__", {"alive": _dead})
    report = repair(url)
    assert report.ok and "completed an interrupted commit" in report.actions[0]
    assert repair(url).actions == [] and repair(url).ok
    copy = f"{bucket}/copy"
    MEMORY.pipe(f"/{bucket.split('//')[1]}/copy/d-train.tfrecord-00000", b"partial")
    report = repair(copy)
    assert not report.ok and "no interrupted rlds_hub commit" in report.problems[0]
    assert not repair(f"{bucket}/nothing").ok


def test_the_recorder_refuses_a_bucket_path():
    from rlds_hub.recorders import Recorder
    from rlds_hub.storage.dataset_files import DatasetError
    from rlds_hub.testing.envs import CounterEnv

    with pytest.raises(DatasetError, match=r"recording writes to a local directory.*reshard"):
        Recorder(CounterEnv(), "s3://bucket/robot")
