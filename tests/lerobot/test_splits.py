"""``meta/info.json``'s ``splits`` (LeRobot's ``{"train": "0:N"}``) read as episode ranges,
and every way they can be wrong refused with a message naming ``--output-split``."""

from __future__ import annotations

import pytest

from rlds_hub.lerobot.reading import LeRobotFormatError, LeRobotInfo, episode_splits


def _info(splits) -> LeRobotInfo:
    raw = {} if splits is None else {"splits": splits}
    return LeRobotInfo("root", "v3.0", 10, None, {}, "data", None, 5, 50, raw)


def test_splits_as_lerobot_writes_them():
    assert episode_splits(_info({"train": "0:5"}), 5) == [("train", 0, 5)]
    assert episode_splits(_info({"test": "3:5", "train": "0:3", "val": "3:3"}), 5) == [
        ("test", 3, 5),
        ("train", 0, 3),
    ]  # the file's order; an empty range left out
    assert episode_splits(_info(None), 5) == episode_splits(_info({}), 5) == []


@pytest.mark.parametrize(
    ("splits", "problem"),
    [
        ({"train": "0:3", "test": "2:5"}, "overlap"),
        ({"train": "0:2", "test": "3:5"}, "leave out episodes 2:3"),
        ({"train": "0:4"}, "leave out episodes 4:5"),
        ({"train": "0:6"}, "outside episodes 0:5"),
        ({"train": "0-5"}, "not 'start:stop'"),
        ({"train": "a:b"}, "not 'start:stop'"),
        ({"my split": "0:5"}, "is not valid"),
        (["train"], "not an object"),
    ],
)
def test_splits_that_cannot_be_kept_are_refused(splits, problem):
    with pytest.raises(LeRobotFormatError, match=problem) as error:
        episode_splits(_info(splits), 5)
    assert "meta/info.json: splits" in str(error.value)
    assert "--output-split NAME" in str(error.value)
