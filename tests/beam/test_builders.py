"""The TFDS builders in builders/: built with TFDS's own machinery (and its ``tfds build``
command line), read back with plain TFDS, checked by ``rlds-hub validate``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlds_hub.beam.job_values import Output, Run
from rlds_hub.beam.jobs.convert import convert
from rlds_hub.inspection.validate import validate
from rlds_hub.storage import iter_records, open_dataset
from rlds_hub.testing.beam_jobs import FAST, dataset_files, record_nested

REPO = Path(__file__).resolve().parents[2]


def _builder_module(name: str):
    path = REPO / "builders" / name / f"{name}_dataset_builder.py"
    # TFDS names a class called Builder after its module, "<name>_dataset_builder", and
    # registers it once per process.
    if f"{name}_dataset_builder" in sys.modules:
        return sys.modules[f"{name}_dataset_builder"]
    spec = importlib.util.spec_from_file_location(f"{name}_dataset_builder", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _beam(flags):
    import apache_beam as beam
    import tensorflow_datasets as tfds

    return tfds.download.DownloadConfig(
        beam_options=beam.options.pipeline_options.PipelineOptions(flags)
    )


@pytest.mark.slow
def test_dm_control_expert_builder_records_the_task_with_its_expert(tmp_path):
    import tensorflow_datasets as tfds

    module = _builder_module("dm_control_expert")
    config = module.ExpertConfig(name="tiny", env="dm_control/point_mass-easy", episodes=3)
    builder = module.Builder(data_dir=os.fspath(tmp_path), config=config)
    builder.download_and_prepare(download_config=_beam(FAST))
    episodes = list(tfds.as_numpy(builder.as_dataset(split="train")))
    assert len(episodes) == 3
    rewards = [sum(float(s["reward"]) for s in e["steps"]) for e in episodes]
    assert min(rewards) > 100  # the expert reaches the target (reward 1 per step there)
    directory = Path(os.fspath(builder.data_path))
    assert validate(open_dataset(directory), tensorflow=False).ok
    positions = [s["observation"]["position"] for s in episodes[0]["steps"]]
    assert np.asarray(positions).dtype == np.float64  # lossless float64 observations


@pytest.mark.slow
def test_envlogger_builder_equals_the_convert_job_and_loads_with_tfds(tmp_path):
    import tensorflow_datasets as tfds

    logs = tmp_path / "logs"
    record_nested(logs / "run", episodes=4, per_shard=2, file_format="riegeli")
    module = _builder_module("envlogger_logs")
    config = module.EnvloggerLogsConfig(name="mine", path=os.fspath(logs))
    builder = module.Builder(data_dir=os.fspath(tmp_path / "tfds"), config=config)
    builder.download_and_prepare(download_config=_beam(FAST))
    directory = Path(os.fspath(builder.data_path))
    convert(logs, Output(tmp_path / "job", name="envlogger_logs"), run=Run(beam_args=FAST))
    assert [bytes(r.data) for r in iter_records(open_dataset(directory), "train")] == [
        bytes(r.data) for r in iter_records(open_dataset(tmp_path / "job"), "train")
    ]
    assert validate(open_dataset(directory), tensorflow=False).ok
    loaded = tfds.builder_from_directory(os.fspath(directory))
    assert loaded.info.splits["train"].num_examples == 4


@pytest.mark.slow
def test_tfds_build_cli_builds_the_minari_builder(tmp_path):
    from test_beam_convert import _minari_dataset

    pytest.importorskip(
        "mlcroissant",
        reason="TFDS 4.9.10's `tfds` command imports "
        "mlcroissant; install it (pip install mlcroissant)",
    )

    source = _minari_dataset(tmp_path / "minari", "hdf5")
    env = {
        **os.environ,
        "RLDS_HUB_MINARI_DATASET": os.fspath(source),
        "PYTHONPATH": os.fspath(REPO / "tests"),
    }
    result = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "tfds"),
            "build",
            os.fspath(REPO / "builders" / "minari_dataset"),
            "--data_dir",
            os.fspath(tmp_path / "out"),
            "--beam_pipeline_options=direct_running_mode=in_memory,direct_num_workers=1",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (directory,) = (tmp_path / "out" / "minari_dataset" / "default").iterdir()
    dataset = open_dataset(directory)
    assert dataset.num_episodes == 6
    convert(source, Output(tmp_path / "job", name="minari_dataset"), run=Run(beam_args=FAST))
    assert (
        dataset_files(directory)["checksums.json"]
        == dataset_files(tmp_path / "job")["checksums.json"]
    )


def test_builders_without_a_source_say_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.delenv("RLDS_HUB_ENVLOGGER_LOGS", raising=False)
    module = _builder_module("envlogger_logs")
    with pytest.raises(ValueError, match="RLDS_HUB_ENVLOGGER_LOGS"):
        _ = module.Builder(data_dir=os.fspath(tmp_path)).info
