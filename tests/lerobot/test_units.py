"""The work units of a LeRobot source: runs of episodes within one data file and one video
file per camera, every episode once and in order, by default enough of them for every
worker to get several (12 episodes in 3 data files on 2 workers: 12 units, not 3)."""

from __future__ import annotations

import itertools

import pytest

from rlds_hub.beam.jobs.export import export
from rlds_hub.beam.sources import lerobot_source
from rlds_hub.beam.sources.lerobot_source import (
    MAX_EPISODES_PER_UNIT,
    UNITS_PER_WORKER,
    default_episodes_per_unit,
    unit_ranges,
)
from rlds_hub.lerobot import reading
from rlds_hub.testing import record
from rlds_hub.testing.envs import FramesEnv

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class ManyFramesEnv(FramesEnv):
    """FramesEnv for more than 6 episodes (its pixel values repeat every 6)."""

    def reset(self):
        self.episode %= 6
        return super().reset()


GROUPS = [[4, 4, 4], [12], [1, 1, 1], [50, 50, 50, 50], [10, 1, 5], [3, 17, 2, 9], [1000]]


def _check_plan(groups: list[int], plan: list[tuple[int, int]], per_unit: int) -> None:
    """No duplicates, no gaps, in order; no unit across a file; even runs within a file."""
    covered = [e for first, count in plan for e in range(first, first + count)]
    assert covered == list(range(sum(groups)))
    bounds = list(itertools.accumulate(groups))
    starts = [0, *bounds[:-1]]
    for group_start, group_end in zip(starts, bounds, strict=True):
        inside = [c for f, c in plan if group_start <= f < group_end]
        assert all(f + c <= group_end for f, c in plan if group_start <= f < group_end)
        assert max(inside) <= per_unit and max(inside) - min(inside) <= 1


@pytest.mark.parametrize("workers", [1, 2, 4, 16])
@pytest.mark.parametrize("groups", GROUPS, ids=str)
def test_the_default_plan_covers_every_episode_once_with_units_for_every_worker(groups, workers):
    total = sum(groups)
    per_unit = default_episodes_per_unit(total, workers)
    plan = unit_ranges(groups, per_unit)
    _check_plan(groups, plan, per_unit)
    assert 1 <= per_unit <= MAX_EPISODES_PER_UNIT
    # at least 4 units per worker whenever the episodes allow it
    assert len(plan) >= min(total, UNITS_PER_WORKER * workers)
    if per_unit == MAX_EPISODES_PER_UNIT:  # large datasets keep the largest units
        assert total >= MAX_EPISODES_PER_UNIT * UNITS_PER_WORKER * workers


def test_twelve_episodes_in_three_files_make_six_units_per_worker_of_two():
    assert default_episodes_per_unit(12, workers=2) == 1
    assert unit_ranges([4, 4, 4], 1) == [(i, 1) for i in range(12)]
    assert unit_ranges([4, 4, 4], 8) == [(0, 4), (4, 4), (8, 4)]  # the old default: 2:1
    assert default_episodes_per_unit(64, workers=2) == 8
    assert default_episodes_per_unit(40, workers=2) == 5
    assert unit_ranges([40], 5) == [(i * 5, 5) for i in range(8)]


def test_a_unit_size_below_one_is_refused():
    with pytest.raises(ValueError, match="episodes_per_unit must be >= 1, got 0"):
        unit_ranges([4], 0)


@pytest.fixture(scope="module")
def three_files(tmp_path_factory):
    """A LeRobot dataset of 12 episodes in 3 data files (rlds_hub's export of 3 shards)."""
    root = tmp_path_factory.mktemp("units")
    record(ManyFramesEnv(lengths=(3, 2)), root / "rlds", episodes=12, max_episodes_per_shard=4)
    export(root / "rlds", root / "lerobot", format="lerobot", video_codec="none", fps=10)
    return root / "lerobot"


@pytest.mark.slow
def test_describe_plans_units_within_the_data_files(three_files):
    episodes = reading.read_episodes(str(three_files))
    files = [(e["data/chunk_index"], e["data/file_index"]) for e in episodes]
    assert len(set(files)) == 3
    default = lerobot_source.describe(str(three_files)).units  # 12 episodes: 1 per unit
    assert [(u.first, u.count) for u in default] == [(i, 1) for i in range(12)]
    given = lerobot_source.describe(str(three_files), episodes_per_unit=8).units
    assert [(u.first, u.count) for u in given] == [(0, 4), (4, 4), (8, 4)]
    info = reading.read_info(str(three_files))
    for unit in [*default, *given]:
        chunk, file = files[unit.first]
        assert unit.part == info.data_file(chunk, file)
        assert {files[i] for i in range(unit.first, unit.first + unit.count)} == {(chunk, file)}
