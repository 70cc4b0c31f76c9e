"""Helpers for the learners' tests and benchmarks: record demonstrations with rlds_hub's own
recorder (no fixtures on disk)."""

from __future__ import annotations

import os
from typing import Any

from rlds_hub.envs import make_env, make_policy


def record_episodes(
    path: str | os.PathLike,
    env_name: str,
    *,
    episodes: int,
    seed: int = 0,
    policy: str | Any = "expert",
    split: str = "train",
) -> str:
    """Records ``episodes`` episodes of a named policy (or a Policy object) into ``path``."""
    from rlds_hub.recorders import Recorder

    env = make_env(env_name, seed=seed)
    actor = make_policy(policy, env_name, env, seed=seed) if isinstance(policy, str) else policy
    name = policy if isinstance(policy, str) else type(policy).__name__
    with Recorder(
        env, path, env_name=env_name, policy_name=name, seed=seed, split=split
    ) as recorder:
        for _ in range(episodes):
            timestep = recorder.reset()
            actor.reset()
            while not timestep.last():
                timestep = recorder.step(actor(timestep))
    return os.fspath(path)
