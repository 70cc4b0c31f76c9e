"""One resolver for every reader (issue 16, item 2): a dataset name works wherever a path
does — ``storage.select``, ``select_episodes``, ``episode_table``, ``statistics``, ``info``
— and a Selection is its dataset where a whole dataset is meant."""

import numpy as np
import pytest

from rlds_hub import storage
from rlds_hub.inspection.info import summarize
from rlds_hub.inspection.stats import statistics
from rlds_hub.storage.names import DATA_DIR_ENV, TFDS_DATA_DIR_ENV, as_dataset
from rlds_hub.testing import CounterEnv, record


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("resolver")
    # Episodes of 3, 2, 3 and 2 steps of a counter (rewards 1.0).
    env = CounterEnv(lengths=(3, 2))
    record(env, str(root / "counter"), episodes=4, policy=np.float32(0.5), env_name="counter")
    return root


@pytest.fixture
def named(data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    monkeypatch.setenv(TFDS_DATA_DIR_ENV, str(tmp_path / "no_tfds"))
    monkeypatch.chdir(tmp_path)  # the name is not also a relative path
    return "counter"


def test_select_takes_a_name(named, data_dir):
    selection = storage.select(named, "train", min_length=4)
    assert selection.dataset.path == str(data_dir / "counter")
    assert selection.indices == (0, 2)
    assert storage.select_episodes(named, max_length=3) == [1, 3]
    assert [s.indices for s in storage.select_splits(named, "train[:2]")] == [(0, 1)]


def test_statistics_takes_a_name(named, data_dir):
    by_name = statistics(named)
    by_path = statistics(str(data_dir / "counter"))
    assert by_name["lengths"]["count"] == 4
    assert by_name["lengths"] == by_path["lengths"]


def test_the_table_layout_and_info_take_a_name(named):
    assert [row["num_steps"] for row in storage.episode_table(named)] == [4, 3, 4, 3]
    assert storage.dataset_layout(named) == "rlds"
    assert summarize(named, count_steps=False)["name"]


def test_a_selection_is_its_dataset_where_a_dataset_is_meant(named):
    selection = storage.select(named, "train[1:]")
    assert as_dataset(selection) is selection.dataset
    assert storage.select(selection) is selection
    assert storage.dataset_layout(selection) == "rlds"


def test_a_selection_is_refused_where_its_episodes_would_be_ignored(named):
    selection = storage.select(named, "train[1:]")
    for call in (
        lambda: statistics(selection),
        lambda: storage.episode_table(selection),
        lambda: storage.select_episodes(selection),
    ):
        with pytest.raises(TypeError, match="not a Selection"):
            call()


def test_an_unknown_name_lists_the_places_searched(named, data_dir):
    with pytest.raises(storage.DatasetError, match=r"no dataset 'nope'.*not found in"):
        storage.select("nope")


def test_other_values_are_refused_with_what_to_pass(named):
    with pytest.raises(TypeError, match=r"select\(\) takes a dataset path or name"):
        storage.select(3)
