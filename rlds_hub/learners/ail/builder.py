"""Wiring AIL into a run: expert data, replay, the recorded environment loop, the learner.

Every episode the agent plays while training is recorded by the online loop
(:class:`~rlds_hub.learners.online.OnlineLoop`) into the run's ``experience/`` (an RLDS
dataset, with the environment steps done in each episode's metadata), and that dataset is
also what a resumed run reloads its replay buffer from: checkpoints are taken at episode
boundaries and note how many experience episodes the replay held.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from rlds_hub.learners import evaluation, inputs
from rlds_hub.learners.ail import replay
from rlds_hub.learners.ail.config import AILConfig
from rlds_hub.learners.ail.learning import AILLearner
from rlds_hub.learners.ail.networks import make_networks, states
from rlds_hub.learners.learned_policy import LearnedPolicy
from rlds_hub.learners.normalization import Normalizer
from rlds_hub.learners.online import OnlineLoop, training_seed
from rlds_hub.learners.run_setup import Setup
from rlds_hub.learners.task import TaskSpec

_EXPERT_FIELDS = (inputs.OBSERVATION, inputs.ACTION, inputs.NEXT_OBSERVATION, inputs.DISCOUNT)


def expert_transitions(setup: Setup[AILConfig]) -> dict[str, np.ndarray]:
    """The demonstrations as replay rows (absorbing states after true terminations)."""
    arrays = inputs.load_transitions(setup.dataset, setup.task, setup.split, fields=_EXPERT_FIELDS)
    terminal = arrays[inputs.DISCOUNT] == 0
    return replay.with_absorbing(arrays, terminal, absorbing=setup.config.absorbing)


class AILAgent:
    """AIL in the run loop: progress counts environment steps."""

    unit = "env step"
    axis_label = "env step"

    def __init__(self, setup: Setup[AILConfig]):
        cfg = setup.config
        self.setup, self.config = setup, cfg
        self.expert = expert_transitions(setup)
        self.learner = AILLearner(
            setup.task, cfg, setup.normalizer, seed=setup.seed, parallel=setup.parallel
        )
        self.replay = replay.ReplayBuffer(
            cfg.replay_size, setup.task.observation_size, setup.task.action_size
        )
        self.env_steps = 0
        self.updates = 0
        self.experience_dir = setup.files.experience
        self._loop: OnlineLoop | None = None
        self._random = np.random.default_rng([setup.seed, 1])
        self._seed = setup.seed

    def _ensure_loop(self) -> OnlineLoop:
        if self._loop is None:
            # Training seeds come from the online training range (a resumed run: a fresh
            # one per resume point), never the demonstrations' unless asked for.
            seed = training_seed(
                self.setup,
                self.env_steps,
                requested=self.config.training_env_seed,
                what="the AIL run",
            )
            self._loop = OnlineLoop(
                self.setup,
                seed=seed,
                policy_name="ail (training)",
                progress=lambda: self.env_steps,
            )
        return self._loop

    @property
    def progress(self) -> int:
        """Environment steps done."""
        return self.env_steps

    @property
    def total(self) -> int:
        """The run's budget in this agent's unit."""
        return self.setup.config.num_steps

    def counters(self) -> dict[str, int]:
        return {"env_steps": self.env_steps, "updates": self.updates}

    def advance(self, limit: int) -> Mapping[str, Any] | None:
        loop = self._ensure_loop()
        cfg = self.config
        count = min(cfg.steps_per_call, limit - self.progress)
        for _ in range(count):
            if self.env_steps < cfg.initial_random_steps:
                action = self._random.uniform(-1.0, 1.0, self.setup.task.action_size)
            else:
                action = self.learner.act(loop.observation[None], counter=self.env_steps)[0]
            step = loop.step(self.setup.task.env_action(action))
            self.replay.add(
                step.observation,
                action.astype(np.float32),
                step.next_observation,
                terminal=step.terminal,
                absorbing=cfg.absorbing,
            )
            self.env_steps += 1
        if self.env_steps < cfg.initial_random_steps:
            return None
        updates = min(count, self.env_steps - cfg.initial_random_steps) or count
        rng = np.random.default_rng([self._seed, 2, self.updates])
        stacked = {
            "agent": self.replay.sample(rng, updates, cfg.batch_size),
            "expert": replay.sample_rows(self.expert, rng, updates, cfg.batch_size),
        }
        metrics = self.learner.step(stacked)
        self.updates += updates
        if loop.returns:
            metrics = {**metrics, "episode_return": float(np.mean(loop.returns))}
            loop.returns.clear()
        return metrics

    def evaluate(self, setup: Setup, record_to: str | None = None) -> dict[str, Any]:
        policy = LearnedPolicy(setup.task, lambda obs: self.learner.act(obs, greedy=True), "ail")
        return evaluation.evaluate(
            policy,
            setup.env_name,
            seed=setup.eval_seed,
            episodes=self.config.eval_episodes,
            references=setup.references,
            record_to=record_to,
            policy_name=f"ail@{self.progress}",
            learner_step=self.progress,
        )

    def can_checkpoint(self) -> bool:
        return self._loop is None or self._loop.at_episode_start

    def checkpoint_state(self) -> Any:
        return {"learner": self.learner.state}

    def checkpoint(self) -> tuple[Any, Any, dict[str, Any]]:
        episodes = self._loop.episodes if self._loop is not None else 0
        meta = {"experience_episodes": episodes, "updates": self.updates}
        return self.checkpoint_state(), self.learner.policy_params(), meta

    def restore(self, state: Any, meta: Mapping[str, Any]) -> None:
        self.learner.state = self.learner.parallel.replicate(state["learner"])
        self.env_steps = int(meta["progress"])
        self.updates = int(meta.get("updates", 0))
        episodes = int(meta.get("experience_episodes", 0))
        if episodes:
            rows = inputs.load_transitions(
                self.experience_dir,
                self.setup.task,
                "train",
                episodes=range(episodes),
                fields=_EXPERT_FIELDS,
                check=False,
            )
            self.replay.extend(
                replay.with_absorbing(
                    rows, rows[inputs.DISCOUNT] == 0, absorbing=self.config.absorbing
                )
            )

    def finish(self) -> None:
        """The episode in progress is dropped at close (only whole episodes are kept)."""

    def data_exhausted_message(self) -> str:
        return "the environment loop stopped"

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()


def policy_params_template(task: TaskSpec, config: AILConfig, run: Mapping[str, Any]) -> Any:
    networks = make_networks(task, config)
    params = jax.eval_shape(networks.init, jax.random.PRNGKey(0))
    return {"policy": params["actor"]}


def make_policy(
    task: TaskSpec,
    config: AILConfig,
    normalizer: Normalizer,
    params: Any,
    *,
    run: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> LearnedPolicy:
    """The trained actor, acting with the mode of its tanh-Gaussian."""
    networks = make_networks(task, config)
    norm = {"mean": jax.numpy.asarray(normalizer.mean), "std": jax.numpy.asarray(normalizer.std)}

    def greedy(actor, norm, observations):
        s = states(observations, jax.numpy.zeros(observations.shape[:-1]), norm)
        return jax.numpy.tanh(networks.actor.apply(actor, s)[0])

    greedy = jax.jit(greedy)
    actor = params["policy"]
    return LearnedPolicy(task, lambda obs: greedy(actor, norm, obs), "ail")
