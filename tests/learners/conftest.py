"""Fixtures of the learners' tests."""

from __future__ import annotations

import pytest

from rlds_hub.testing import record

POINT_MASS = "dm_control/point_mass-easy"


@pytest.fixture(scope="session")
def point_mass_demos(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two expert episodes of point_mass-easy (seed 0), recorded once per session; read-only
    (a test that changes a dataset records its own)."""
    path = tmp_path_factory.mktemp("learners") / "point_mass"
    record(POINT_MASS, path, episodes=2, seed=0, policy="expert")
    return str(path)
