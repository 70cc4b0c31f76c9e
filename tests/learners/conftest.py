"""Fixtures of the learners' tests."""

from __future__ import annotations

import pytest

from rlds_hub.learners.task import TaskSpec
from rlds_hub.testing import record

POINT_MASS = "dm_control/point_mass-easy"


@pytest.fixture(scope="session")
def point_mass_demos(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two expert episodes of point_mass-easy (seed 0), recorded once per session; read-only
    (a test that changes a dataset records its own)."""
    path = tmp_path_factory.mktemp("learners") / "point_mass"
    record(POINT_MASS, path, episodes=2, seed=0, policy="expert")
    return str(path)


@pytest.fixture
def toy_task() -> TaskSpec:
    """A 2-d float observation ``o`` and a 1-d action ``a`` bounded to [-1, 1]."""
    return TaskSpec.from_specs(
        {"kind": "array", "shape": [2], "dtype": "float32", "name": "o"},
        {
            "kind": "bounded",
            "shape": [1],
            "dtype": "float32",
            "minimum": -1.0,
            "maximum": 1.0,
            "name": "a",
        },
    )
