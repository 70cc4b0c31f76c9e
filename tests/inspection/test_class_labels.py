"""ClassLabel features show their classes: ``num_classes`` from features.json and the names
TFDS writes next to it (``steps-action.labels.txt``), in ``info`` (issue 15, item 25)."""

import json
from pathlib import Path

import numpy as np
import pytest

from rlds_hub.cli import main
from rlds_hub.inspection.info import format_summary, summarize
from rlds_hub.testing.oxe import write_tfds_dataset

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A dataset TFDS wrote with named step ClassLabels and an unnamed episode one."""
    features = tfds.features.FeaturesDict(
        {
            "steps": tfds.features.Dataset(
                {
                    "observation": {
                        "x": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                        "grip": tfds.features.ClassLabel(names=["open", "closed"]),
                    },
                    "action": tfds.features.ClassLabel(names=["left", "right", "stay"]),
                    "reward": tfds.features.Scalar(dtype=np.float32),
                    "discount": tfds.features.Scalar(dtype=np.float32),
                    "is_first": tfds.features.Scalar(dtype=np.bool_),
                    "is_last": tfds.features.Scalar(dtype=np.bool_),
                    "is_terminal": tfds.features.Scalar(dtype=np.bool_),
                }
            ),
            "task": tfds.features.ClassLabel(num_classes=4),
        }
    )

    episodes = [
        (
            i,
            {
                "steps": [
                    {
                        "observation": {"x": np.full(2, t, np.float32), "grip": t % 2},
                        "action": t % 3,
                        "reward": 1.0,
                        "discount": 1.0,
                        "is_first": t == 0,
                        "is_last": t == 2,
                        "is_terminal": t == 2,
                    }
                    for t in range(3)
                ],
                "task": i,
            },
        )
        for i in range(2)
    ]
    return write_tfds_dataset(
        str(tmp_path_factory.mktemp("labels")), features, episodes, "labelled", 1
    )


def _entry(summary, where, key):
    return next(e for e in summary["features"][where] if e["key"] == key)


def test_info_lists_class_label_names_and_counts(labelled):
    summary = summarize(labelled)
    assert _entry(summary, "steps", "action")["class_label"] == {
        "num_classes": 3,
        "names": ["left", "right", "stay"],
    }
    assert _entry(summary, "steps", "observation/grip")["class_label"]["names"] == [
        "open",
        "closed",
    ]
    assert _entry(summary, "episode", "task")["class_label"] == {"num_classes": 4, "names": None}
    assert "class_label" not in _entry(summary, "steps", "reward")
    text = format_summary(summary)
    assert "3 classes: left, right, stay" in text and "4 classes (no names)" in text


def test_info_json_on_the_command_line_carries_them(labelled, capsys):
    assert main(["info", str(labelled), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert _entry(shown, "steps", "action")["class_label"]["names"][1] == "right"


@pytest.mark.slow
def test_the_services_dataset_details_carry_them(labelled, tmp_path):
    from rlds_hub.testing.service import app_client

    with app_client([Path(labelled).parents[1]], f"sqlite:///{tmp_path}/index.sqlite3") as client:
        (item,) = client.get("/api/v1/datasets").json()["items"]
        detail = client.get(f"/api/v1/datasets/{item['name']}").json()
    action = next(n for n in detail["features"]["steps"] if n["name"] == "action")
    assert action["class_label"] == {"num_classes": 3, "names": ["left", "right", "stay"]}
    reward = next(n for n in detail["features"]["steps"] if n["name"] == "reward")
    assert reward["class_label"] is None
