"""Datasets found by name in TFDS's layouts: ``<data_dir>/<name>/<version>`` and
``<data_dir>/<name>/<config>/<version>`` (issue 15, item 25)."""

import json
import shutil

import numpy as np
import pytest

from rlds_hub.cli import main
from rlds_hub.inspection.info import summarize
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.names import DATA_DIR_ENV, TFDS_DATA_DIR_ENV, as_dataset, resolve
from rlds_hub.testing import CounterEnv, record


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("names") / "ds"
    # Episodes of three steps of a counter.
    record(CounterEnv(), str(path), episodes=2, policy=np.float32(0.5), env_name="counter")
    return path


@pytest.fixture
def roots(tmp_path, dataset, monkeypatch):
    """An rlds_hub data dir and a TFDS data dir with datasets in every TFDS layout."""
    ours, tfds_dir = tmp_path / "ours", tmp_path / "tfds"
    for place in (
        "single/default/1.0.0",
        "multi/a/1.0.0",
        "multi/b/1.0.0",
        "multi/b/1.1.0",
        "plain/1.0.0",
        "plain/2.0.0",
    ):
        shutil.copytree(dataset, tfds_dir / place)
    (tfds_dir / "plain" / "2.1.0.incomplete_x1").mkdir()
    shutil.copy(dataset / "dataset_info.json", tfds_dir / "plain" / "2.1.0.incomplete_x1")
    ours.mkdir()
    monkeypatch.setenv(DATA_DIR_ENV, str(ours))
    monkeypatch.setenv(TFDS_DATA_DIR_ENV, str(tfds_dir))
    return tfds_dir


def test_a_default_config_folder_resolves_by_name(roots):
    assert resolve("single") == str(roots / "single" / "default" / "1.0.0")
    assert as_dataset("single").num_episodes == 2
    assert resolve("single/default") == str(roots / "single" / "default" / "1.0.0")


def test_versions_and_configs_as_tfds_writes_them(roots):
    assert resolve("plain") == str(roots / "plain" / "2.0.0")  # newest, not the incomplete
    assert resolve("plain:1.0.0") == str(roots / "plain" / "1.0.0")
    assert resolve("plain/1.0.0") == str(roots / "plain" / "1.0.0")
    assert resolve("multi/b") == str(roots / "multi" / "b" / "1.1.0")
    assert resolve("multi/b:1.0.0") == str(roots / "multi" / "b" / "1.0.0")
    assert resolve("multi/a/1.0.0") == str(roots / "multi" / "a" / "1.0.0")


def test_several_configs_use_tfds_default_or_are_named(roots):
    with pytest.raises(DatasetError, match=r"several configs .*: a, b; pass NAME/CONFIG"):
        resolve("multi")
    (roots / "multi" / ".config").mkdir()
    (roots / "multi" / ".config" / "metadata.json").write_text(
        json.dumps({"default_config_name": "b"})
    )
    assert resolve("multi") == str(roots / "multi" / "b" / "1.1.0")


def test_a_missing_version_lists_the_ones_there(roots):
    with pytest.raises(DatasetError, match=r"no version 3.0.0; it has 1.0.0, 2.0.0"):
        resolve("plain:3.0.0")
    with pytest.raises(DatasetError, match="no dataset 'nope'"):
        resolve("nope")


def test_info_takes_a_name_or_a_name_directory(roots, capsys):
    assert main(["info", "single", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["path"] == str(roots / "single" / "default" / "1.0.0")
    assert summarize(roots / "plain")["path"] == str(roots / "plain" / "2.0.0")


def test_a_damaged_dataset_is_not_mistaken_for_a_name_directory(roots, dataset):
    broken = roots / "broken"
    shutil.copytree(dataset, broken)
    (broken / "dataset_info.json").unlink()
    shutil.copytree(dataset, broken / "1.0.0")
    assert resolve(str(broken)) == str(broken)
    with pytest.raises(DatasetError, match="damaged dataset"):
        summarize(broken)
