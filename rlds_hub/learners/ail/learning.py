"""The AIL learner: discriminator, then SAC on its rewards, one pure update, scanned."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlds_hub.learners.ail import losses
from rlds_hub.learners.ail.config import AILConfig
from rlds_hub.learners.ail.networks import AILNetworks, make_networks, states
from rlds_hub.learners.networks import sample_tanh_gaussian
from rlds_hub.learners.normalization import Normalizer
from rlds_hub.learners.parallel import DataParallel
from rlds_hub.learners.task import TaskSpec


class AILState(NamedTuple):
    actor: Any
    critic: Any
    target_critic: Any
    discriminator: Any  # flax variables: {"params", maybe "batch_stats" (spectral norm)}
    log_temperature: jax.Array
    actor_opt: Any
    critic_opt: Any
    discriminator_opt: Any
    temperature_opt: Any
    key: jax.Array
    steps: jax.Array


def discriminator_inputs(
    kind: str, states_: jax.Array, actions: jax.Array, next_states: jax.Array
) -> jax.Array:
    if kind == "state_action":
        return jnp.concatenate([states_, actions], axis=-1)
    return jnp.concatenate([states_, next_states], axis=-1)


class AILLearner:
    """Updates for DAC: ``update_many(state, batches[K]) -> state, metrics`` (jitted).

    A batch is ``{"agent": replay transitions, "expert": expert transitions}``, each with
    ``observation``, ``absorbing``, ``action``, ``next_observation``, ``next_absorbing``
    and (agent) ``discount`` (1 to bootstrap, 0 after a termination without absorbing
    states).
    """

    def __init__(
        self,
        task: TaskSpec,
        config: AILConfig,
        normalizer: Normalizer,
        *,
        seed: int = 0,
        parallel: DataParallel | None = None,
    ):
        config.validate()
        if task.discrete:
            from rlds_hub.learners.errors import LearnerError

            raise LearnerError("AIL (SAC) needs continuous actions; use bc for discrete ones")
        self.task, self.config = task, config
        self.parallel = parallel or DataParallel()
        self.parallel.check_batch_size(config.batch_size)
        self.networks: AILNetworks = make_networks(task, config)
        self.target_entropy = (
            config.target_entropy if config.target_entropy is not None else -float(task.action_size)
        )
        self.optimizers = {
            "actor": optax.adam(config.actor_learning_rate),
            "critic": optax.adam(config.critic_learning_rate),
            "discriminator": optax.adam(config.discriminator_learning_rate),
            "temperature": optax.adam(config.temperature_learning_rate),
        }
        key = jax.random.PRNGKey(seed)
        init_key, self._acting_key, key = jax.random.split(key, 3)
        params = self.networks.init(init_key)
        log_temperature = jnp.asarray(np.log(config.initial_temperature), jnp.float32)
        opt = self.optimizers
        self.state = self.parallel.replicate(
            AILState(
                params["actor"],
                params["critic"],
                params["target_critic"],
                params["discriminator"],
                log_temperature,
                opt["actor"].init(params["actor"]),
                opt["critic"].init(params["critic"]),
                opt["discriminator"].init(params["discriminator"]["params"]),
                opt["temperature"].init(log_temperature),
                key,
                jnp.int32(0),
            )
        )
        self.normalizer = normalizer
        self.norm = self.parallel.replicate({"mean": normalizer.mean, "std": normalizer.std})
        replicated = self.parallel.replicated
        self._update_many = jax.jit(
            self._scan, donate_argnums=0, out_shardings=(replicated, replicated)
        )
        self._act = jax.jit(self._policy_action, static_argnames="greedy")

    # -- acting ------------------------------------------------------------------------------

    def _policy_action(self, actor, norm, observations, key, counter, greedy: bool):
        s = states(observations, jnp.zeros(observations.shape[:-1]), norm)
        mean, log_std = self.networks.actor.apply(actor, s)
        if greedy:
            return jnp.tanh(mean)
        return sample_tanh_gaussian(jax.random.fold_in(key, counter), mean, log_std)[0]

    def act(
        self,
        observations: np.ndarray,
        key: jax.Array | None = None,
        counter: int = 0,
        *,
        greedy: bool = False,
    ) -> np.ndarray:
        """Normalised actions ``[B, A]`` for flattened observations ``[B, obs_size]``:
        sampled with ``fold_in(key, counter)``, or the mode with ``greedy``."""
        if key is None:
            key = self._acting_key
        return np.asarray(
            self._act(
                self.state.actor, self.norm, observations, key, np.int32(counter), greedy=greedy
            )
        )

    # -- updates -----------------------------------------------------------------------------

    def _discriminator_logits(self, variables, inputs, update_stats=False):
        module = self.networks.discriminator
        if self.config.spectral_norm:
            logits, updates = module.apply(
                variables, inputs, update_stats=update_stats, mutable=["batch_stats"]
            )
            return logits[..., 0], updates
        return module.apply(variables, inputs)[..., 0], {}

    def update(
        self, state: AILState, batch: dict[str, Any], norm: dict[str, jax.Array]
    ) -> tuple[AILState, dict[str, jax.Array]]:
        """One discriminator step, then one SAC step on rewards from the new discriminator."""
        cfg, nets, opt = self.config, self.networks, self.optimizers
        key, gp_key, next_key, actor_key = jax.random.split(state.key, 4)
        agent, expert = batch["agent"], batch["expert"]
        s = states(agent["observation"], agent["absorbing"], norm)
        s_next = states(agent["next_observation"], agent["next_absorbing"], norm)
        e = states(expert["observation"], expert["absorbing"], norm)
        e_next = states(expert["next_observation"], expert["next_absorbing"], norm)
        agent_inputs = discriminator_inputs(cfg.discriminator_input, s, agent["action"], s_next)
        expert_inputs = discriminator_inputs(cfg.discriminator_input, e, expert["action"], e_next)

        # Discriminator (spectral norm: one power-iteration step, then the loss with it).
        disc = state.discriminator
        if cfg.spectral_norm:
            _, stats = self._discriminator_logits(
                disc, jnp.concatenate([expert_inputs, agent_inputs]), update_stats=True
            )
            disc = {**disc, **stats}

        def disc_loss(params):
            variables = {**disc, "params": params}
            return losses.discriminator_loss(
                lambda x: self._discriminator_logits(variables, x)[0],
                expert_inputs,
                agent_inputs,
                gp_key,
                gradient_penalty=cfg.gradient_penalty,
                gradient_penalty_target=cfg.gradient_penalty_target,
                entropy_bonus=cfg.discriminator_entropy,
            )

        (_, disc_metrics), grads = jax.value_and_grad(disc_loss, has_aux=True)(disc["params"])
        updates, disc_opt = opt["discriminator"].update(
            grads, state.discriminator_opt, disc["params"]
        )
        disc = {**disc, "params": optax.apply_updates(disc["params"], updates)}

        # Rewards from the updated discriminator, recomputed for every sampled batch.
        logits = self._discriminator_logits(disc, agent_inputs)[0]
        rewards = jax.lax.stop_gradient(losses.imitation_reward(cfg.reward, logits))

        temperature = jnp.exp(state.log_temperature)
        next_mean, next_log_std = nets.actor.apply(state.actor, s_next)
        next_actions, next_log_probs = sample_tanh_gaussian(next_key, next_mean, next_log_std)
        next_q = nets.critic.apply(state.target_critic, s_next, next_actions)

        def critic_loss(params):
            q = nets.critic.apply(params, s, agent["action"])
            return losses.critic_loss(
                q, rewards, agent["discount"], next_q, next_log_probs, temperature, cfg.discount
            )

        c_loss, grads = jax.value_and_grad(critic_loss)(state.critic)
        updates, critic_opt = opt["critic"].update(grads, state.critic_opt, state.critic)
        critic = optax.apply_updates(state.critic, updates)

        def actor_loss(params):
            mean, log_std = nets.actor.apply(params, s)
            actions, log_probs = sample_tanh_gaussian(actor_key, mean, log_std)
            q = nets.critic.apply(critic, s, actions)
            return losses.actor_loss(q, log_probs, temperature), log_probs

        (a_loss, log_probs), grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
        updates, actor_opt = opt["actor"].update(grads, state.actor_opt, state.actor)
        actor = optax.apply_updates(state.actor, updates)

        t_loss, grad = jax.value_and_grad(losses.temperature_loss)(
            state.log_temperature, log_probs, self.target_entropy
        )
        updates, temperature_opt = opt["temperature"].update(grad, state.temperature_opt)
        log_temperature = optax.apply_updates(state.log_temperature, updates)

        target = optax.incremental_update(critic, state.target_critic, cfg.tau)
        new_state = AILState(
            actor,
            critic,
            target,
            disc,
            log_temperature,
            actor_opt,
            critic_opt,
            disc_opt,
            temperature_opt,
            key,
            state.steps + 1,
        )
        return new_state, {
            **disc_metrics,
            "critic_loss": c_loss,
            "actor_loss": a_loss,
            "temperature": temperature,
            "reward": jnp.mean(rewards),
            "entropy": -jnp.mean(log_probs),
            "temperature_loss": t_loss,
        }

    def _scan(self, state, stacked, norm):
        step = functools.partial(self.update, norm=norm)
        state, metrics = jax.lax.scan(lambda s, b: step(s, b), state, stacked)
        return state, jax.tree_util.tree_map(jnp.mean, metrics)

    def step(self, stacked: dict[str, Any]) -> dict[str, jax.Array]:
        """Runs the updates of stacked batches ``[K, B, ...]`` (placed on the mesh)."""
        self.state, metrics = self._update_many(
            self.state, self.parallel.shard_stacked(stacked), self.norm
        )
        return metrics

    def policy_params(self) -> dict[str, Any]:
        return {"policy": self.state.actor}
