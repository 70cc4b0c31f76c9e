"""Wiring BC into a run: data from the dataset, the learner, its policy for evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax

from rlds_hub.learners import evaluation, inputs
from rlds_hub.learners.bc.config import BCConfig
from rlds_hub.learners.bc.learning import FIELDS, BCLearner
from rlds_hub.learners.bc.networks import make_networks
from rlds_hub.learners.learned_policy import LearnedPolicy
from rlds_hub.learners.normalization import Normalizer
from rlds_hub.learners.run_setup import Setup
from rlds_hub.learners.task import TaskSpec


class BCAgent:
    """BC in the run loop: progress counts SGD updates."""

    unit = "update"
    axis_label = "update"

    def __init__(self, setup: Setup[BCConfig]):
        self.setup = setup
        arrays = inputs.load_transitions(setup.dataset, setup.task, setup.split, fields=FIELDS)
        self.num_transitions = len(arrays[inputs.OBSERVATION])
        self.learner = BCLearner(
            setup.task,
            setup.config,
            setup.normalizer,
            arrays,
            seed=setup.seed,
            parallel=setup.parallel,
        )

    @property
    def progress(self) -> int:
        return self.learner.steps

    @property
    def total(self) -> int:
        """The run's budget in this agent's unit."""
        return self.setup.config.num_steps

    def counters(self) -> dict[str, int]:
        return {"updates": self.progress}

    def advance(self, limit: int) -> Mapping[str, Any] | None:
        return self.learner.step(limit - self.progress)

    def evaluate(self, setup: Setup, record_to: str | None = None) -> dict[str, Any]:
        policy = LearnedPolicy(setup.task, self.learner.act, "bc")
        return evaluation.evaluate(
            policy,
            setup.env_name,
            seed=setup.eval_seed,
            episodes=setup.config.eval_episodes,
            references=setup.references,
            record_to=record_to,
            policy_name=f"bc@{self.progress}",
            learner_step=self.progress,
        )

    def can_checkpoint(self) -> bool:
        return True

    def checkpoint_state(self) -> Any:
        return self.learner.checkpoint_state()

    def checkpoint(self) -> tuple[Any, Any, dict[str, Any]]:
        return self.learner.checkpoint_state(), self.learner.policy_params(), {}

    def restore(self, state: Any, meta: Mapping[str, Any]) -> None:
        self.learner.restore(state)

    def finish(self) -> None:
        """Nothing pending at the end of a run."""

    def data_exhausted_message(self) -> str:
        return "the data source ran out"

    def close(self) -> None:
        self.learner.close()


def policy_params_template(task: TaskSpec, config: BCConfig, run: Mapping[str, Any]) -> Any:
    networks = make_networks(task, config)
    return {"policy": jax.eval_shape(networks.init, jax.random.PRNGKey(0))}


def make_policy(
    task: TaskSpec,
    config: BCConfig,
    normalizer: Normalizer,
    params: Any,
    *,
    run: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> LearnedPolicy:
    """The greedy BC policy (regression output, tanh-Gaussian mode, or arg-max class)."""
    networks = make_networks(task, config)
    norm = {"mean": jax.numpy.asarray(normalizer.mean), "std": jax.numpy.asarray(normalizer.std)}
    greedy = jax.jit(lambda p, n, obs: networks.act(p, (obs - n["mean"]) / n["std"]))
    policy_params = params["policy"]
    return LearnedPolicy(task, lambda obs: greedy(policy_params, norm, obs), "bc")
