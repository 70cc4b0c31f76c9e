"""AIL's networks: the SAC actor and twin critics, and the discriminator."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlds_hub.learners.ail.config import AILConfig
from rlds_hub.learners.networks import MLP, GaussianHead
from rlds_hub.learners.task import TaskSpec


class TwinCritic(nn.Module):
    """Two independent Q-networks on (state, action); returns ``[2, B]``."""

    hidden_sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, states: jax.Array, actions: jax.Array) -> jax.Array:
        x = jnp.concatenate([states, actions], axis=-1)
        q1 = MLP(self.hidden_sizes, 1, name="q1")(x)[..., 0]
        q2 = MLP(self.hidden_sizes, 1, name="q2")(x)[..., 0]
        return jnp.stack([q1, q2])


@dataclasses.dataclass(frozen=True)
class AILNetworks:
    """Modules and the input size (normalised observation + the absorbing flag)."""

    actor: GaussianHead
    critic: TwinCritic
    discriminator: MLP
    state_size: int
    action_size: int
    discriminator_size: int

    def init(self, key: jax.Array) -> dict[str, Any]:
        actor_key, critic_key, disc_key = jax.random.split(key, 3)
        states = jnp.zeros((1, self.state_size))
        actions = jnp.zeros((1, self.action_size))
        disc = self.discriminator.init(disc_key, jnp.zeros((1, self.discriminator_size)))
        critic = self.critic.init(critic_key, states, actions)
        return {
            "actor": self.actor.init(actor_key, states),
            "critic": critic,
            "target_critic": jax.tree_util.tree_map(jnp.copy, critic),
            "discriminator": disc,
        }


def make_networks(task: TaskSpec, config: AILConfig) -> AILNetworks:
    state_size = task.observation_size + 1  # the absorbing-state indicator
    if config.discriminator_input == "state_action":
        disc_size = state_size + task.action_size
    else:
        disc_size = 2 * state_size
    return AILNetworks(
        actor=GaussianHead(config.actor_hidden_sizes, task.action_size),
        critic=TwinCritic(config.critic_hidden_sizes),
        discriminator=MLP(config.discriminator_hidden_sizes, 1, spectral_norm=config.spectral_norm),
        state_size=state_size,
        action_size=task.action_size,
        discriminator_size=disc_size,
    )


def states(observations: jax.Array, absorbing: jax.Array, norm: dict[str, jax.Array]) -> jax.Array:
    """Network input: observations normalised with the expert's statistics, zeroed on
    absorbing states, and the absorbing flag appended."""
    normalised = (observations - norm["mean"]) / norm["std"]
    flag = absorbing[..., None].astype(normalised.dtype)
    return jnp.concatenate([normalised * (1.0 - flag), flag], axis=-1)
