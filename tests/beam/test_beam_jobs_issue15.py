"""Smaller defects of the jobs (issue 15, item 25): the filter's progress bar, ``map``'s
dtypes and returns, ``merge`` of one dataset twice, Parquet strings and stored JPEG frames,
re-running a TFDS builder on another source, and the builders shipped with the package."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from dm_env import specs

from rlds_hub.beam.job_values import Run
from rlds_hub.beam.jobs.filter import filter_dataset
from rlds_hub.beam.jobs.map import MapFunctionError, map_dataset
from rlds_hub.beam.jobs.merge import merge
from rlds_hub.testing import CounterEnv, record
from rlds_hub.testing.beam_jobs import FAST, record_nested

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def five(tmp_path_factory):
    """Five episodes (lengths 4, 7, 2, 5, 4)."""
    path = tmp_path_factory.mktemp("five") / "robot"
    record_nested(path, episodes=5, per_shard=2)
    return path


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in (Path(path) / "episodes.jsonl").read_text().splitlines()]


# ---- filter's progress ------------------------------------------------------------------------


def test_the_filter_progress_bar_counts_every_episode_examined(five, tmp_path, capfd):
    summary = filter_dataset(
        five, tmp_path / "out", min_length=6, run=Run(beam_args=FAST, quiet=False)
    )
    assert sum(summary["splits"].values()) == 2  # 2 of 5 kept
    bar = capfd.readouterr().err.replace("\r", "\n").splitlines()
    final = [line for line in bar if line.startswith("filter")][-1]
    assert "5/5" in final and "100%" in final, final


# ---- map -----------------------------------------------------------------------------------


def walk() -> CounterEnv:
    """Rewards with many significant digits over 300 steps: their float64 sum depends on
    the order of the additions."""
    rng = np.random.default_rng(7)
    return CounterEnv(
        (300,),
        terminate=(False,),
        observation=lambda episode, t: rng.standard_normal(2) if t else np.zeros(2),
        observation_spec=specs.Array((2,), np.float64, "observation"),
        reward=lambda episode, t: float(rng.uniform(0, 1)) * 0.1,
        action_spec=specs.BoundedArray((1,), np.float32, -1.0, 1.0, "action"),
    )


def test_map_keeps_the_recorded_returns_of_unchanged_rewards(tmp_path):
    source = tmp_path / "walk"
    record(walk(), source, episodes=3)
    out = tmp_path / "out"
    map_dataset(
        source, out, step_fn="test_beam_jobs_issue15:_halve_action", run=Run(beam_args=FAST)
    )
    assert [r["return"] for r in _rows(out)] == [r["return"] for r in _rows(source)]
    relabeled = tmp_path / "relabeled"
    map_dataset(
        source, relabeled, step_fn="test_beam_jobs_issue15:_double_reward", run=Run(beam_args=FAST)
    )
    for mine, theirs in zip(_rows(relabeled), _rows(source), strict=True):
        assert mine["return"] == pytest.approx(2 * theirs["return"], rel=1e-12)


def _halve_action(step):
    return {**step, "action": step["action"] / 2}


def _double_reward(step):
    return {**step, "reward": step["reward"] * 2}


def _int_reward_after_the_first(episode):
    steps = dict(episode["steps"])
    if episode["__index__"] > 0:
        steps["reward"] = np.round(steps["reward"]).astype(np.int64) * 0
    return {**{k: v for k, v in episode.items() if k != "__index__"}, "steps": steps}


def test_map_refuses_a_later_episode_whose_dtypes_differ_from_the_first(five, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(
        MapFunctionError,
        match=r"steps/reward holds int64 values where the "
        r"features say float64",
    ):
        map_dataset(
            five,
            out,
            episode_fn="test_beam_jobs_issue15:_int_reward_after_the_first",
            run=Run(beam_args=FAST),
        )
    assert not out.exists()


# ---- merge -----------------------------------------------------------------------------------


def test_merge_refuses_one_dataset_given_twice(five, tmp_path):
    from rlds_hub.beam.jobs.merge import DuplicateInputError

    link = tmp_path / "link"
    link.symlink_to(five)
    for inputs in ([five, five], [five, link]):
        with pytest.raises(DuplicateInputError, match=r"inputs 1 and 2 .* are the same dataset"):
            merge(inputs, tmp_path / "out", run=Run(beam_args=FAST))
    assert not (tmp_path / "out").exists()


# ---- export ------------------------------------------------------------------------------


def test_parquet_export_keeps_strings_as_text_and_frames_as_stored(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rlds_hub.beam.jobs.export import export
    from rlds_hub.storage import iter_records, open_dataset
    from rlds_hub.testing import oxe_episode, write_oxe_dataset

    rng = np.random.default_rng(0)
    episodes = [oxe_episode(i, 3 + i, rng, image_size=16) for i in range(3)]
    source = write_oxe_dataset(str(tmp_path / "tfds"), episodes, name="oxe_like", shards=1)
    out = tmp_path / "parquet"
    export(source, out, run=Run(beam_args=FAST))
    table = pq.read_table(out / "steps").sort_by([("episode", "ascending"), ("step", "ascending")])
    assert table.schema.field("language_instruction").type == pa.string()
    assert table.column("language_instruction").to_pylist()[:2] == [
        "pick up block 0 (étape 0)",
        "pick up block 0 (étape 1)",
    ]
    # the frames are the bytes the dataset stores: JPEG where it holds JPEG, PNG where PNG
    import tensorflow as tf

    stored = {"observation/image": [], "observation/wrist_image": []}
    for stored_record in iter_records(open_dataset(source), "train"):
        feature = tf.train.Example.FromString(bytes(stored_record.data)).features.feature
        for name, frames in stored.items():
            frames += list(feature[f"steps/{name}"].bytes_list.value)
    for name, frames in stored.items():
        assert table.column(name).to_pylist() == frames, name
    assert stored["observation/image"][0][:2] == b"\xff\xd8"  # JPEG
    marker = json.loads((out / "export.json").read_text())
    assert marker["tables"]["steps"]["columns"]["observation/image"]["encoding"] == "jpeg"
    assert marker["tables"]["steps"]["columns"]["observation/wrist_image"]["encoding"] == "png"


# ---- TFDS builders -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_builder_refuses_to_reuse_data_converted_from_another_source(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds
    from test_beam_convert import _minari_dataset
    from test_builders import _beam, _builder_module

    from rlds_hub.beam.tfds_builder import SourceChangedError
    from rlds_hub.storage import open_dataset

    first = _minari_dataset(tmp_path / "one", "hdf5")
    second = _minari_dataset(tmp_path / "two", "arrow")
    module = _builder_module("minari_dataset")
    data_dir = os.fspath(tmp_path / "tfds")

    def build(source, mode=None):
        monkeypatch.setenv("RLDS_HUB_MINARI_DATASET", str(source))  # as `tfds build` gets it
        builder = module.Builder(data_dir=data_dir)
        config = _beam(FAST)
        if mode is not None:
            config = tfds.download.DownloadConfig(
                beam_options=config.beam_options, download_mode=mode
            )
        builder.download_and_prepare(download_config=config)
        return Path(os.fspath(builder.data_path))

    directory = build(first)
    build(first)  # the same source: reused
    with pytest.raises(
        SourceChangedError,
        match=r"converted from .*one.*the source is now "
        r".*two.*tfds build --overwrite",
    ):
        build(second)
    assert open_dataset(directory).metadata["source"]["path"] == str(first)
    build(second, tfds.download.GenerateMode.FORCE_REDOWNLOAD)
    assert open_dataset(directory).metadata["source"]["path"] == str(second)
    data = second / "data" / "metadata.json"
    data.write_text(data.read_text() + " ")
    with pytest.raises(SourceChangedError, match=r"data/metadata.json has changed"):
        build(second)


def test_only_rlds_hub_is_installed_and_the_checkout_entry_points_still_work():
    """pipelines/ and builders/ are generic top-level names: the package installs only
    rlds_hub (the jobs as rlds_hub.pipelines); from the repository root, python -m
    pipelines.<job> and python -m builders NAME still work."""
    import subprocess
    import sys
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = find_packages(where=REPO, include=config["packages"]["find"]["include"])
    assert "rlds_hub.pipelines" in packages
    assert not [p for p in packages if not p.startswith("rlds_hub")], packages
    located = subprocess.run(
        [sys.executable, "-m", "builders", "minari_dataset"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert (Path(located) / "minari_dataset_dataset_builder.py").is_file()
    wrong = subprocess.run(
        [sys.executable, "-m", "builders", "minari"], cwd=REPO, capture_output=True, text=True
    )
    assert wrong.returncode == 2 and "minari_dataset" in wrong.stderr
    for module in ("pipelines.reshard", "rlds_hub.pipelines.reshard"):
        helped = subprocess.run(
            [sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True
        )
        assert helped.returncode == 0 and f"python -m {module}" in helped.stdout, helped.stderr
