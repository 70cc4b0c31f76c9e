"""Datasets in the Open X-Embodiment layout (a real action and the success reward on the
``is_last`` step), written by TFDS itself: detected, counted in returns and statistics,
used as a final transition by the loaders, and named by info and validate."""

import numpy as np
import pytest

from rlds_hub import data
from rlds_hub.cli import main
from rlds_hub.inspection import statistics, summarize, validate
from rlds_hub.storage import dataset_layout, episode_table, open_dataset
from rlds_hub.testing import oxe_episode, write_oxe_dataset

LENGTHS = [4, 6, 3, 5, 7, 2]  # steps per episode; episode i succeeds unless i % 3 == 2


@pytest.fixture(scope="module")
def oxe(tmp_path_factory):
    rng = np.random.default_rng(0)
    episodes = [oxe_episode(i, n, rng) for i, n in enumerate(LENGTHS)]
    path = write_oxe_dataset(str(tmp_path_factory.mktemp("oxe")), episodes)
    return path, episodes


def _by_id(path):
    """Table rows keyed by the source episode id (TFDS shuffles episodes when writing)."""
    return {r["metadata"]["episode_id"]: r for r in episode_table(path)}


def test_layout_is_detected_from_the_data(oxe):
    path, _ = oxe
    assert dataset_layout(path) == "oxe"


def test_returns_count_the_last_step_reward(oxe):
    path, episodes = oxe
    rows = _by_id(path)
    for i, episode in enumerate(episodes):
        expected = float(sum(s["reward"] for s in episode["steps"]))
        assert rows[i]["return"] == expected == (0.0 if i % 3 == 2 else 1.0)
        assert rows[i]["num_steps"] == rows[i]["num_transitions"] == LENGTHS[i]
        assert rows[i]["terminated"]
    assert sorted(
        r["metadata"]["episode_id"]
        for r in episode_table(
            path,
        )
        if r["return"] >= 1
    ) == [i for i in range(len(LENGTHS)) if i % 3 != 2]
    selected = data.select_episodes(path, min_return=1)
    assert len(selected) == sum(i % 3 != 2 for i in range(len(LENGTHS)))
    assert len(list(data.load(path, min_return=1))) == len(selected)


def test_statistics_include_the_last_step(oxe):
    path, episodes = oxe
    stats = statistics(path)
    assert stats["layout"] == "oxe"
    assert stats["num_transitions"] == sum(LENGTHS)
    actions = np.concatenate([[s["action"] for s in e["steps"]] for e in episodes])
    action = stats["features"]["action"]
    assert action["count"] == sum(LENGTHS) and not action["last_step_excluded"]
    assert np.allclose(action["mean"], actions.astype(np.float64).mean(axis=0))
    assert stats["returns"]["mean"] == pytest.approx(4 / 6)


def test_transitions_use_the_last_step_as_a_final_transition(oxe):
    path, _ = oxe
    batches = list(data.transitions(path, batch_size=8, shuffle=False))
    total = sum(len(b["reward"]) for b in batches)
    assert total == sum(LENGTHS)
    assert sum(float(b["reward"].sum()) for b in batches) == 4.0  # every success reward
    last = np.concatenate([b["discount"] for b in batches])
    assert (last == 0).sum() == len(LENGTHS)  # the terminal final transitions
    states = np.concatenate([b["observation"]["state"] for b in batches])
    nexts = np.concatenate([b["next_observation"]["state"] for b in batches])
    final = last == 0
    assert np.array_equal(states[final], nexts[final])  # no later observation exists
    windows = list(data.windows(path, size=3, batch_size=4, keys=["reward", "is_last"]))
    assert sum(float((w["reward"] * w["mask"]).sum()) for w in windows) > 0


def test_info_and_validate_name_the_layout(oxe, capsys):
    path, _ = oxe
    assert summarize(path)["layout"] == "oxe"
    report = validate(path)
    assert report.ok and report.layout == "oxe"
    assert not [p for p in report.problems if "zero-filled" in p.message]
    assert main(["validate", path, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "layout: oxe (every step, the last included, holds a real action" in out
    assert main(["info", path]) == 0
    info = capsys.readouterr().out
    assert "layout    oxe:" in info and "return mean 0.67 [0.00, 1.00]" in info


def test_declared_layout_wins_over_detection(oxe, tmp_path):
    import json
    import shutil

    path, _ = oxe
    copy = tmp_path / "declared"
    shutil.copytree(path, copy)
    (copy / "metadata.json").write_text(json.dumps({"layout": "rlds"}))
    assert dataset_layout(open_dataset(copy)) == "rlds"
    assert summarize(copy)["splits"]["train"]["transitions"] == sum(LENGTHS) - len(LENGTHS)
