"""PlannedFractions: the share of planned steps of each played episode, as evaluations use it."""

from __future__ import annotations

from typing import Any

from rlds_hub.learners.poir.acting import PlannedFractions


class _Policy:
    """Plans on every other step; counts as POIRPolicy does between resets."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.steps = 0
        self.planned = 0

    @property
    def planned_fraction(self) -> float:
        return self.planned / max(self.steps, 1)

    def __call__(self, timestep: Any) -> int:
        self.planned += self.steps % 2 == 0
        self.steps += 1
        return timestep


def test_each_played_episode_records_its_share_and_empty_ones_none() -> None:
    tracked = PlannedFractions(_Policy())  # type: ignore[arg-type]
    tracked.reset()  # the loop's first reset: nothing played yet
    for steps in (4, 3):
        for t in range(steps):
            assert tracked(t) == t
        tracked.reset()
    for t in range(5):
        tracked(t)
    tracked.record()  # the last episode, after the loop
    assert tracked.fractions == [0.5, 2 / 3, 0.6]
