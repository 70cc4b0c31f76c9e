"""POIR's policy: BC in distribution, the return-to-distribution planner out of it."""

from __future__ import annotations

import functools
from typing import Any

import dm_env
import jax
import jax.numpy as jnp
import numpy as np

from rlds_hub.learners.poir import planner
from rlds_hub.learners.poir.config import POIRConfig
from rlds_hub.learners.poir.networks import POIRNetworks
from rlds_hub.learners.task import TaskSpec


class POIRPolicy:
    """An :class:`rlds_hub.envs.Policy`: one jitted decision per step (the planner runs
    only when the state is out of the expert's distribution, in ``switch`` mode).

    ``planned_fraction``: the share of steps the planner chose since the last reset.
    """

    def __init__(
        self,
        task: TaskSpec,
        networks: POIRNetworks,
        config: POIRConfig,
        params: dict[str, Any],
        *,
        seed: int = 0,
        mode: str | None = None,
    ):
        self.task, self.config = task, config
        self.params = params
        self.mode = mode or config.mode
        self._mode = jnp.int32(planner.MODES[self.mode])
        self._key = jax.random.PRNGKey(seed)
        self._decide = jax.jit(functools.partial(planner.act, networks, config))
        self._calls = 0
        self.reset()

    def reset(self) -> None:
        self._carry = {
            "plan": jnp.zeros((self.config.horizon, self.task.action_size)),
            "valid": jnp.bool_(False),
        }
        self.steps = 0
        self.planned = 0

    @property
    def planned_fraction(self) -> float:
        return self.planned / max(self.steps, 1)

    def normalised_action(self, observation: np.ndarray) -> np.ndarray:
        key = jax.random.fold_in(self._key, self._calls)
        self._calls += 1
        action, self._carry, info = self._decide(
            self.params, observation, self._carry, key, self._mode
        )
        self.steps += 1
        self.planned += int(info["planned"])
        return np.asarray(action)

    def __call__(self, timestep: dm_env.TimeStep) -> Any:
        observation = self.task.flatten_observation(timestep.observation, batched=False)
        return self.task.env_action(self.normalised_action(observation))


class PlannedFractions:
    """A :class:`POIRPolicy` for an evaluation loop that records, in ``fractions``, each
    played episode's share of planned steps as the loop resets the policy; call
    :meth:`record` after the loop for the last episode."""

    def __init__(self, policy: POIRPolicy) -> None:
        self.policy = policy
        self.fractions: list[float] = []

    def record(self) -> None:
        """Records the current episode's share, if it has steps."""
        if self.policy.steps:
            self.fractions.append(self.policy.planned_fraction)

    def reset(self) -> None:
        self.record()
        self.policy.reset()

    def __call__(self, timestep: dm_env.TimeStep) -> Any:
        return self.policy(timestep)
