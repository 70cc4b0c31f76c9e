"""Wiring POIR into a run: offline training, then online fine-tuning of the planner's model.

Two counts, kept apart: offline SGD updates (``updates``, budget ``num_steps``), then
online environment steps (``env_steps``, budget ``online_steps``; updates already done count
towards nothing else), plus the ensemble's fine-tuning updates (``finetune_updates``). The
run's position (metrics' ``step``, checkpoint numbers) is updates then env steps. Online,
the agent acts with its planner in the environment (under ``online_shift``, e.g. the
deployment's noisy actuators); every episode is recorded by the online loop
(:class:`~rlds_hub.learners.online.OnlineLoop`) into the run's ``experience/`` and read back
from there — the executed actions, as the environment applied them — to fine-tune the
dynamics ensemble on demonstrations plus experience.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rlds_hub.learners import evaluation, inputs
from rlds_hub.learners.normalization import Normalizer
from rlds_hub.learners.online import OnlineLoop, training_seed
from rlds_hub.learners.poir.acting import PlannedFractions, POIRPolicy
from rlds_hub.learners.poir.config import POIRConfig
from rlds_hub.learners.poir.learning import FIELDS, POIRLearner
from rlds_hub.learners.poir.networks import make_networks
from rlds_hub.learners.run_setup import Setup
from rlds_hub.learners.task import TaskSpec


def episode_ids(selection: Any) -> np.ndarray:
    """The demonstration index of every transition of a selection, in dataset order."""
    from rlds_hub.storage.episodes import episode_table

    rows = episode_table(selection.dataset, selection.split)
    if selection.indices is not None:
        rows = [rows[i] for i in selection.indices]
    return np.repeat(np.arange(len(rows)), [r["num_transitions"] for r in rows])


class POIRAgent:
    """POIR in the run loop."""

    axis_label = "step (SGD updates, then env steps)"

    def __init__(self, setup: Setup[POIRConfig]):
        from rlds_hub.storage.query import select

        cfg = setup.config
        self.setup, self.config = setup, cfg
        selection = select(setup.dataset, setup.split)
        self.demonstrations = inputs.load_transitions(
            setup.dataset, setup.task, setup.split, fields=FIELDS
        )
        self.learner = POIRLearner(
            setup.task,
            cfg,
            setup.normalizer,
            self.demonstrations,
            episode_ids(selection),
            seed=setup.seed,
            parallel=setup.parallel,
        )
        self.online_steps = 0
        self.online_episodes = 0
        self.finetune_updates = 0
        self._experience: list[dict[str, np.ndarray]] = []
        self._loop: OnlineLoop | None = None
        self._policy: POIRPolicy | None = None
        self.experience_dir = setup.files.experience

    @property
    def offline(self) -> bool:
        """Whether the offline phase has updates left."""
        return self.learner.steps < self.config.num_steps

    @property
    def unit(self) -> str:
        """What the next call advances: SGD updates offline, env steps online."""
        return "update" if self.offline else "env step"

    @property
    def total(self) -> int:
        """The run's end position: the offline budget (or the updates a resumed run has
        already done beyond it), then ``online_steps`` environment steps."""
        return max(self.learner.steps, self.config.num_steps) + self.config.online_steps

    @property
    def progress(self) -> int:
        return self.learner.steps + self.online_steps

    def counters(self) -> dict[str, int]:
        return {
            "updates": self.learner.steps,
            "env_steps": self.online_steps,
            "finetune_updates": self.finetune_updates,
        }

    def advance(self, limit: int) -> Mapping[str, Any] | None:
        if self.offline:
            return self.learner.step(self.config.num_steps - self.learner.steps)
        left = self.config.online_steps - self.online_steps
        return self._online(min(self.config.steps_per_call, left))

    # -- online --------------------------------------------------------------------------------

    def _start_online(self) -> tuple[OnlineLoop, POIRPolicy]:
        setup, cfg = self.setup, self.config
        seed = training_seed(setup, self.online_steps, what="the POIR run")
        self._loop = OnlineLoop(
            setup,
            seed=seed,
            policy_name="poir (online fine-tuning)",
            progress=lambda: self.online_steps,
            shift=cfg.online_shift,
            metadata={"shift": dict(cfg.online_shift or {})},
        )
        self._policy = POIRPolicy(
            setup.task, self.learner.networks, cfg, self.learner.planner_params(), seed=seed
        )
        return self._loop, self._policy

    def _online(self, count: int) -> Mapping[str, Any] | None:
        if self._loop is None or self._policy is None:
            loop, policy = self._start_online()
        else:
            loop, policy = self._loop, self._policy
        metrics = None
        for _ in range(count):
            step = loop.step(policy(loop.timestep))
            self.online_steps += 1
            if step.ended:
                metrics = self._finetune(policy)
                policy.reset()
        return metrics

    def _finetune(self, policy: POIRPolicy) -> dict[str, Any]:
        """Reads the episode just recorded back and fine-tunes the ensemble."""
        from rlds_hub.storage import open_dataset

        self.online_episodes += 1
        dataset = open_dataset(self.experience_dir)
        count = dataset.split("train").num_episodes
        rows = inputs.load_transitions(
            dataset, self.setup.task, "train", episodes=[count - 1], fields=FIELDS, check=False
        )
        self._experience.append(rows)
        planned = policy.planned_fraction
        data = {
            k: np.concatenate([self.demonstrations[k], *(e[k] for e in self._experience)])
            for k in FIELDS
        }
        rng = np.random.default_rng([self.setup.seed, 3, self.online_episodes])
        metrics = self.learner.finetune(data, self.config.finetune_updates_per_episode, rng)
        self.finetune_updates += self.config.finetune_updates_per_episode
        policy.params = self.learner.planner_params()
        return {
            **(metrics or {}),
            "planned_fraction": planned,
            "online_episodes": self.online_episodes,
        }

    # -- evaluation and checkpoints -----------------------------------------------------------

    def evaluate(self, setup: Setup, record_to: str | None = None) -> dict[str, Any]:
        policy = POIRPolicy(
            setup.task,
            self.learner.networks,
            self.config,
            self.learner.planner_params(),
            seed=setup.eval_seed,
        )
        tracked = PlannedFractions(policy)
        result = evaluation.evaluate(
            tracked,
            setup.env_name,
            seed=setup.eval_seed,
            episodes=self.config.eval_episodes,
            references=setup.references,
            record_to=record_to,
            shift=self.config.online_shift,
            policy_name=f"poir@{self.learner.steps} updates+{self.online_steps} env steps",
            learner_step=self.progress,
        )
        tracked.record()
        fractions = tracked.fractions
        return {**result, "planned_fraction": float(np.mean(fractions)) if fractions else 0.0}

    def can_checkpoint(self) -> bool:
        return self._loop is None or self._loop.at_episode_start

    def checkpoint_state(self) -> Any:
        return {"learner": self.learner.state}

    def checkpoint(self) -> tuple[Any, Any, dict[str, Any]]:
        meta = {
            "online_steps": self.online_steps,
            "online_episodes": self.online_episodes,
            "offline_steps": self.learner.steps,
            "finetune_updates": self.finetune_updates,
        }
        return self.checkpoint_state(), {"policy": self.learner.planner_params()}, meta

    def restore(self, state: Any, meta: Mapping[str, Any]) -> None:
        self.learner.state = self.learner.parallel.replicate(state["learner"])
        self.learner.steps = int(meta.get("offline_steps", self.learner.state.steps))
        self.online_steps = int(meta.get("online_steps", 0))
        self.online_episodes = int(meta.get("online_episodes", 0))
        self.finetune_updates = int(
            meta.get(
                "finetune_updates", self.online_episodes * self.config.finetune_updates_per_episode
            )
        )
        if self.online_episodes:
            rows = inputs.load_transitions(
                self.experience_dir,
                self.setup.task,
                "train",
                episodes=range(self.online_episodes),
                fields=FIELDS,
                check=False,
            )
            self._experience = [rows]

    def finish(self) -> None:
        """An unfinished online episode is dropped at close (only whole ones are kept)."""

    def data_exhausted_message(self) -> str:
        return "the data source ran out"

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()


def policy_params_template(task: TaskSpec, config: POIRConfig, run: Mapping[str, Any]) -> None:
    """None: the planner's arrays (reference states, segments) are sized by the data, so the
    checkpoint's policy item is restored as saved."""
    return None


def make_policy(
    task: TaskSpec,
    config: POIRConfig,
    normalizer: Normalizer,
    params: Any,
    *,
    run: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> POIRPolicy:
    """POIR's acting policy (BC, the planner out of distribution) from a checkpoint."""
    import jax

    planner_params = jax.tree_util.tree_map(jax.numpy.asarray, params["policy"])
    return POIRPolicy(task, make_networks(task, config), config, planner_params, seed=seed)
