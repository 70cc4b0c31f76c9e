"""A job's commit: an empty output directory is taken, a job that loses the output to
something else keeps its finished result and says where, ``--overwrite`` replaces only the
dataset that was there, and a commit killed between any two of its steps is finished or
undone by the next job (or ``validate --repair``) without deleting anything complete."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rlds_hub.beam import execution
from rlds_hub.beam.job_values import Output, Run
from rlds_hub.beam.jobs.reshard import reshard
from rlds_hub.beam.staging import OutputConflictError, OutputExistsError, Staging
from rlds_hub.storage import publish
from rlds_hub.testing.beam_jobs import FAST, no_staging_left, record_nested


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("commit") / "source"
    record_nested(path, episodes=3, lengths=(3, 4))
    return path


def _dataset(path: Path, tag: str) -> None:
    path.mkdir()
    (path / "dataset_info.json").write_text(json.dumps({"tag": tag}))
    (path / "features.json").write_text("{}")


def _tag(path: Path) -> str:
    return json.loads((path / "dataset_info.json").read_text())["tag"]


def _finished(output: Path, tag: str, *, overwrite: bool = False) -> Staging:
    staging = Staging(output, overwrite=overwrite)
    (staging.path / "dataset_info.json").write_text(json.dumps({"tag": tag}))
    (staging.path / "features.json").write_text("{}")
    return staging


def test_a_job_into_an_existing_empty_directory_commits(source, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    summary = reshard(source, output, run=Run(beam_args=FAST))
    assert summary["splits"] == {"train": 3}
    assert (output / "dataset_info.json").exists() and no_staging_left(tmp_path)


def test_the_loser_of_a_race_keeps_its_result_and_says_where(tmp_path):
    output = tmp_path / "out"
    first, second = _finished(output, "first"), _finished(output, "second")
    first.commit()
    with pytest.raises(OutputConflictError, match="appeared while the job ran") as caught:
        second.commit()
    kept = caught.value.kept
    assert str(kept) in str(caught.value) and kept.parent == tmp_path
    assert not kept.name.startswith(".")  # visible, and removed by nobody
    assert _tag(kept) == "second" and _tag(output) == "first"
    assert not (kept / ".owner").exists() and not (kept / ".pieces").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", kept.name])
    Staging(tmp_path / "other")  # a later job does not remove the kept result
    assert _tag(kept) == "second"


def test_a_job_that_loses_the_race_through_the_cli_keeps_its_result(
    source, tmp_path, monkeypatch, capsys
):
    from pipelines import main

    output = tmp_path / "out"
    real = execution.run_pipeline

    def and_then_another_job_commits(*args, **kwargs):
        seconds = real(*args, **kwargs)
        _finished(output, "winner").commit()
        return seconds

    monkeypatch.setattr(execution, "run_pipeline", and_then_another_job_commits)
    assert main("reshard", ["--input", str(source), "--output", str(output), "--quiet", *FAST]) == 2
    error = capsys.readouterr().err
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("out-result-")]
    assert len(kept) == 1 and str(kept[0]) in error
    assert (kept[0] / "dataset_info.json").exists() and _tag(output) == "winner"


def test_overwrite_keeps_a_file_put_at_the_output_while_the_job_ran(source, tmp_path, monkeypatch):
    output = tmp_path / "out"
    real = execution.run_pipeline

    def and_a_user_writes_a_file(*args, **kwargs):
        seconds = real(*args, **kwargs)
        output.mkdir(exist_ok=True)
        (output / "important.txt").write_text("mine")
        return seconds

    monkeypatch.setattr(execution, "run_pipeline", and_a_user_writes_a_file)
    with pytest.raises(OutputConflictError, match=r"important\.txt") as caught:
        reshard(source, Output(output, overwrite=True), run=Run(beam_args=FAST))
    assert (output / "important.txt").read_text() == "mine"
    assert (caught.value.kept / "dataset_info.json").exists()


def test_overwrite_replaces_the_old_dataset_but_not_what_was_added_to_it(tmp_path):
    output = tmp_path / "out"
    _dataset(output, "old")
    replacement = _finished(output, "new", overwrite=True)
    (output / "notes.txt").write_text("keep me")
    with pytest.raises(OutputConflictError, match=r"notes\.txt appeared") as caught:
        replacement.commit()
    assert _tag(output) == "old" and (output / "notes.txt").read_text() == "keep me"
    assert _tag(caught.value.kept) == "new"
    # Unchanged since the job started: replaced, the old copy deleted.
    again = _finished(output, "newer", overwrite=True)
    (output / "notes.txt").unlink()
    again.commit()
    assert _tag(output) == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", caught.value.kept.name]


def test_overwrite_does_not_replace_a_file_that_took_the_output(tmp_path):
    output = tmp_path / "out"
    _dataset(output, "old")
    replacement = _finished(output, "new", overwrite=True)
    (output / "dataset_info.json").unlink()
    (output / "features.json").unlink()
    output.rmdir()
    output.write_text("a file")
    with pytest.raises(OutputConflictError, match="replaced by a file"):
        replacement.commit()
    assert output.read_text() == "a file"


class Crash(BaseException):
    """A process killed at this point (nothing after it runs)."""


def _crash_at(monkeypatch, step: int) -> list[str]:
    """Makes the ``step``-th file system change of a publish (rename or delete) crash."""
    calls: list[str] = []
    real_rename, real_rmtree = os.rename, publish.shutil.rmtree

    def counted(real, name):
        def call(*args, **kwargs):
            calls.append(name)
            if len(calls) == step:
                raise Crash(name)
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(publish.os, "rename", counted(real_rename, "rename"))
    monkeypatch.setattr(publish.shutil, "rmtree", counted(real_rmtree, "rmtree"))
    return calls


def _kill(directory: Path) -> None:
    """Makes the owner of ``directory`` (a staging directory) a process that is gone."""
    owner = directory / ".owner"
    if owner.exists():
        data = json.loads(owner.read_text())
        owner.write_text(json.dumps({**data, "pid": 2**22 + 4321}))


def _complete(path: Path) -> bool:
    return (path / "dataset_info.json").is_file() and (path / "features.json").is_file()


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("step", range(1, 11))
def test_a_commit_killed_at_any_step_is_recovered_without_losing_a_dataset(
    tmp_path, monkeypatch, overwrite, step
):
    output = tmp_path / "out"
    if overwrite:
        _dataset(output, "old")
    staging = _finished(output, "new", overwrite=overwrite)
    staging_id = staging.path.name
    calls = _crash_at(monkeypatch, step)
    try:
        staging.commit()
        crashed = False
    except Crash:
        crashed = True
    monkeypatch.undo()
    if not crashed:
        assert _tag(output) == "new"
        return
    for entry in tmp_path.iterdir():  # the killed process's owner file
        if entry.name.startswith(staging_id):
            _kill(entry)
    # Whatever the crash left: the output is the old dataset, nothing, or the new one.
    assert not output.exists() or _tag(output) in ("old", "new")
    publish.recover(output)
    marked = "rename" in calls[: step - 1]  # the result was marked finished
    tags = {_tag(p) for p in tmp_path.iterdir() if p.name.startswith("out")}
    if overwrite or marked:
        assert _complete(output), (step, calls)
    else:
        assert not output.exists()  # a job killed before its commit wrote nothing
    if marked:  # a finished result is at the output, or kept beside it
        assert "new" in tags
    if overwrite and _tag(output) != "new":
        assert "old" in tags  # the old dataset is deleted only once the new one is in place
    assert no_staging_left(tmp_path)
    # The next job writing the output starts cleanly from here.
    Staging(output, overwrite=True).abort()


def test_the_state_left_by_an_old_overwrite_killed_between_renames_is_recovered(tmp_path):
    """The reported state: the output gone, the only old copy in ``.tmp-out-old-``, the
    finished new dataset in an owner-less ``.tmp-out-``; the next job used to delete the old
    copy and leave the new one hidden."""
    output = tmp_path / "out"
    _dataset(tmp_path / ".tmp-out-old-0123abcd", "old")
    _dataset(tmp_path / ".tmp-out-0123456789ab", "new")
    with pytest.raises(OutputExistsError, match="already holds a dataset"):
        Staging(output)  # recovered first: the output is the new dataset
    assert _tag(output) == "new" and no_staging_left(tmp_path)


def test_an_old_copy_without_a_new_dataset_is_put_back(tmp_path):
    output = tmp_path / "out"
    _dataset(tmp_path / ".tmp-out-old-0123abcd", "old")
    done = publish.recover(output)
    assert _tag(output) == "old" and done and no_staging_left(tmp_path)


def test_a_live_jobs_staging_directory_is_left_alone(tmp_path):
    output = tmp_path / "out"
    live = _finished(output, "live")
    assert publish.recover(output) == [] and live.path.exists()
    live.abort()


def test_validate_repair_restores_an_output_an_interrupted_overwrite_left_hidden(
    source, tmp_path, capsys
):
    from rlds_hub.cli import main

    output = tmp_path / "out"
    reshard(source, output, run=Run(beam_args=FAST))
    os.rename(output, tmp_path / ".tmp-out-0123456789ab-old")
    reshard(source, tmp_path / "new", run=Run(beam_args=FAST))
    os.rename(tmp_path / "new", tmp_path / ".tmp-out-0123456789ab-ready")
    assert main(["validate", "--repair", "--no-tensorflow", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "completed an interrupted commit" in printed and "removed .tmp-out-" in printed
    assert _complete(output) and no_staging_left(tmp_path)


def test_an_output_that_is_a_link_to_an_empty_directory_is_written_through_it(tmp_path):
    target = tmp_path / "disk" / "out"
    target.mkdir(parents=True)
    link = tmp_path / "out"
    link.symlink_to(target)
    _finished(link, "new").commit()
    assert link.is_symlink() and _tag(target) == "new"
