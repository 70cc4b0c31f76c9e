"""Helpers for the learners' tests and benchmarks: record demonstrations with rlds_hub's own
recorder (no fixtures on disk)."""

from __future__ import annotations

import os
from typing import Any


def record_episodes(
    path: str | os.PathLike,
    env_name: str,
    *,
    episodes: int,
    seed: int = 0,
    policy: str | Any = "expert",
    split: str = "train",
) -> str:
    """Records ``episodes`` episodes of a named policy (or a Policy object) into ``path``
    with the tests' shared :func:`rlds_hub.testing.recording.record`; returns ``path``."""
    from rlds_hub.testing.recording import record

    named = {} if isinstance(policy, str) else {"policy_name": type(policy).__name__}
    record(env_name, path, episodes=episodes, seed=seed, policy=policy, split=split, **named)
    return os.fspath(path)
