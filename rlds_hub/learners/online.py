"""The online learners' one environment loop, recorded (AIL's training, POIR's fine-tuning).

:class:`OnlineLoop` steps one environment, seeded from the online training range
(:func:`training_seed`, ``learners/seeds.py``), under an optional deployment shift, and
records every episode with rlds_hub's :class:`~rlds_hub.recorders.Recorder` into the run's
``experience/`` dataset (each episode's metadata: ``env_steps``, the learner's count once it
completed; only whole episodes are kept). A resumed run reads its experience back from
there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import dm_env
import numpy as np

from rlds_hub.learners import evaluation, seeds, shifts
from rlds_hub.learners.run_setup import Setup


def training_seed(
    setup: Setup, position: int, *, requested: int | None = None, what: str = "the run"
) -> int:
    """The environment seed of an online loop started at ``position`` (the learner's count
    of environment steps: 0 for a fresh run, the checkpoint's when resumed).

    ``requested`` (e.g. AIL's ``training_env_seed``) is used for a fresh run only; otherwise
    :func:`~rlds_hub.learners.seeds.online_seed`, which skips the demonstrations' seeds.
    Raises :class:`~rlds_hub.learners.seeds.SeedOverlapError` when the seed is the run's
    evaluation seed.
    """
    if requested is not None and position == 0:
        seed = requested
    else:
        seed = seeds.online_seed(
            setup.seed, position, avoid=evaluation.dataset_seeds(setup.dataset)
        )
    seeds.check_disjoint([setup.eval_seed], trained=[seed], what=f"{what} in {setup.run_dir}")
    return seed


@dataclasses.dataclass(frozen=True)
class Transition:
    """One environment step as the learners store it (flattened observations)."""

    observation: np.ndarray
    next_observation: np.ndarray
    terminal: bool  # the episode ended with discount 0 (not a time limit)
    ended: bool  # the episode ended (terminated or truncated)
    timestep: dm_env.TimeStep  # what the environment returned


class OnlineLoop:
    """One environment, recorded into ``setup``'s ``experience/``.

    Args:
      setup: the run (its task, environment and run directory).
      seed: the environment's seed (:func:`training_seed`).
      policy_name: recorded in the dataset's sessions.
      progress: the learner's environment-step count, read when an episode is recorded.
      shift: a deployment shift (:func:`rlds_hub.learners.shifts.apply_shift`); the
        recorder stores the actions as the environment executed them.
      metadata: extra dataset metadata for the recording session.
    """

    def __init__(
        self,
        setup: Setup,
        *,
        seed: int,
        policy_name: str,
        progress: Callable[[], int],
        shift: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ):
        from rlds_hub.envs import make_env
        from rlds_hub.recorders import Recorder

        self.task = setup.task
        self.seed = seed
        self.recorder: Recorder | None = None

        def record(env: dm_env.Environment) -> Recorder:
            self.recorder = Recorder(
                env,
                setup.files.experience,
                env_name=setup.env_name,
                policy_name=policy_name,
                seed=seed,
                # the last step's value is kept: the env steps done once it completes
                episode_fn=lambda timestep, action, env: {
                    "env_steps": np.int64(progress() + (0 if timestep.first() else 1))
                },
                save_unfinished_episodes=False,
                metadata=dict(metadata) if metadata is not None else None,
            )
            return self.recorder

        self.env = shifts.apply_shift(
            make_env(setup.env_name, seed=seed), shift, seed, record=record
        )
        self.episode_return = 0.0
        self.returns: list[float] = []  # of the episodes completed since the caller cleared it
        self._start(self.env.reset())

    def _start(self, timestep: dm_env.TimeStep) -> None:
        self.timestep = timestep
        self.observation = self.task.flatten_observation(timestep.observation, batched=False)

    @property
    def at_episode_start(self) -> bool:
        """Whether the current timestep is an episode's first (a checkpoint can go here)."""
        return self.timestep.first()

    def step(self, action: Any) -> Transition:
        """Steps with ``action`` (in the environment's action spec); a finished episode is
        recorded and the next one started."""
        timestep = self.env.step(action)
        next_observation = self.task.flatten_observation(timestep.observation, batched=False)
        transition = Transition(
            self.observation,
            next_observation,
            bool(timestep.last() and np.all(np.asarray(timestep.discount) == 0)),
            timestep.last(),
            timestep,
        )
        self.episode_return += float(timestep.reward)
        if timestep.last():
            self.returns.append(self.episode_return)
            self.episode_return = 0.0
            self._start(self.env.reset())
        else:
            self.timestep, self.observation = timestep, next_observation
        return transition

    @property
    def episodes(self) -> int:
        """The episodes recorded (in ``experience/``, earlier sessions included)."""
        return self.recorder.num_episodes if self.recorder is not None else 0

    def close(self) -> None:
        """Finalises the recording (an unfinished episode is dropped)."""
        if self.recorder is not None:
            self.recorder.close()
