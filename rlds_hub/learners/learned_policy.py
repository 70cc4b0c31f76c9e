"""A trained policy as an :class:`rlds_hub.envs.Policy`: flattened observation -> the
algorithm's jitted act function -> an action in the env's spec (the algorithms' builders make
one; :func:`rlds_hub.learners.load_policy` rebuilds one from a run directory)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dm_env
import numpy as np

from rlds_hub.learners.task import TaskSpec


class LearnedPolicy:
    """A stateless policy: ``act(observations [1, obs_size]) -> outputs [1, ...]``."""

    def __init__(self, task: TaskSpec, act: Callable[[np.ndarray], Any], name: str):
        self.task = task
        self.name = name
        self._act = act

    def reset(self) -> None:
        """Nothing to reset: the policy is a function of the observation."""

    def __call__(self, timestep: dm_env.TimeStep) -> Any:
        observation = self.task.flatten_observation(timestep.observation, batched=False)
        output = np.asarray(self._act(observation[None]))[0]
        return self.task.env_action(output)

    def __repr__(self) -> str:
        return f"LearnedPolicy({self.name}, env={self.task.env_name})"
