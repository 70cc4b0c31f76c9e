"""The agent's replay buffer and DAC's absorbing states (host memory, NumPy).

Transitions carry ``absorbing`` / ``next_absorbing`` flags and a ``discount`` (1: bootstrap
from the next state; 0: a termination, when absorbing states are off). With absorbing
states (Kostrikov et al., 2019), a true termination ``(s, a) -> end`` becomes
``(s, a) -> s_abs`` plus ``(s_abs, 0) -> s_abs``, both bootstrapped, so the value of ending
an episode is learned from the discriminator's reward instead of being fixed at 0. A
truncation (``is_last`` without ``is_terminal``: the time limit) is an ordinary transition
that bootstraps from its real next state.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

FIELDS = ("observation", "absorbing", "action", "next_observation", "next_absorbing", "discount")


def with_absorbing(
    transitions: Mapping[str, np.ndarray], terminal: np.ndarray, *, absorbing: bool
) -> dict[str, np.ndarray]:
    """Replay-ready transitions from ``observation``, ``action``, ``next_observation`` and a
    boolean ``terminal`` per transition (true terminations only)."""
    obs = np.asarray(transitions["observation"], np.float32)
    actions = np.asarray(transitions["action"], np.float32)
    next_obs = np.asarray(transitions["next_observation"], np.float32).copy()
    terminal = np.asarray(terminal, bool)
    count = len(obs)
    out = {
        "observation": obs,
        "absorbing": np.zeros(count, np.float32),
        "action": actions,
        "next_observation": next_obs,
        "next_absorbing": np.zeros(count, np.float32),
        "discount": np.ones(count, np.float32),
    }
    if not terminal.any():
        return out
    if not absorbing:
        out["discount"] = np.where(terminal, 0.0, 1.0).astype(np.float32)
        return out
    next_obs[terminal] = 0.0
    out["next_absorbing"] = terminal.astype(np.float32)
    ends = int(terminal.sum())
    loops = {
        "observation": np.zeros((ends, obs.shape[1]), np.float32),
        "absorbing": np.ones(ends, np.float32),
        "action": np.zeros((ends, *actions.shape[1:]), np.float32),
        "next_observation": np.zeros((ends, obs.shape[1]), np.float32),
        "next_absorbing": np.ones(ends, np.float32),
        "discount": np.ones(ends, np.float32),
    }
    return {k: np.concatenate([out[k], loops[k]]) for k in FIELDS}


class ReplayBuffer:
    """A ring buffer of transitions (the newest ``capacity`` kept), sampled uniformly."""

    def __init__(self, capacity: int, observation_size: int, action_size: int):
        self.capacity = capacity
        self.arrays = {
            "observation": np.zeros((capacity, observation_size), np.float32),
            "absorbing": np.zeros(capacity, np.float32),
            "action": np.zeros((capacity, action_size), np.float32),
            "next_observation": np.zeros((capacity, observation_size), np.float32),
            "next_absorbing": np.zeros(capacity, np.float32),
            "discount": np.zeros(capacity, np.float32),
        }
        self.size = 0
        self._next = 0

    def add(
        self,
        observation: np.ndarray,
        action: np.ndarray,
        next_observation: np.ndarray,
        *,
        terminal: bool,
        absorbing: bool,
    ) -> None:
        """One environment transition (two rows for a termination with absorbing states)."""
        self.extend(
            with_absorbing(
                {
                    "observation": observation[None],
                    "action": action[None],
                    "next_observation": next_observation[None],
                },
                np.asarray([terminal]),
                absorbing=absorbing,
            )
        )

    def extend(self, rows: Mapping[str, np.ndarray]) -> None:
        count = len(rows["observation"])
        if count > self.capacity:
            rows = {k: v[-self.capacity :] for k, v in rows.items()}
            count = self.capacity
        index = (self._next + np.arange(count)) % self.capacity
        for key in FIELDS:
            self.arrays[key][index] = rows[key]
        self._next = int((self._next + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)

    def sample(
        self, rng: np.random.Generator, num_batches: int, batch_size: int
    ) -> dict[str, np.ndarray]:
        """``[num_batches, batch_size, ...]`` rows drawn with replacement."""
        index = rng.integers(0, self.size, (num_batches, batch_size))
        return {k: v[index] for k, v in self.arrays.items()}


def sample_rows(
    arrays: Mapping[str, np.ndarray], rng: np.random.Generator, num_batches: int, batch_size: int
) -> dict[str, np.ndarray]:
    """Rows of fixed arrays (the expert's transitions), ``[num_batches, batch_size, ...]``."""
    size = len(arrays["observation"])
    index = rng.integers(0, size, (num_batches, batch_size))
    return {k: np.asarray(v)[index] for k, v in arrays.items()}
