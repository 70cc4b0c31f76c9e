"""AIL's losses and rewards: pure functions (the discriminator, SAC's critic, actor and
temperature), called by the learner and directly by the tests."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def imitation_reward(kind: str, logits: jax.Array) -> jax.Array:
    """The reward of agent inputs from the discriminator's logits ``h = log D − log(1−D)``.

    ``gail``: −log(1 − D) = softplus(h) (positive: a survival bonus, which DAC's absorbing
    states keep from rewarding longer episodes by itself); ``airl``: log D − log(1 − D) = h;
    ``fairl``: −h·e^h (forward KL).
    """
    if kind == "gail":
        return jax.nn.softplus(logits)
    if kind == "airl":
        return logits
    if kind == "fairl":
        return -logits * jnp.exp(jnp.clip(logits, -20.0, 20.0))
    raise ValueError(f"unknown imitation reward {kind!r}; choose gail, airl or fairl")


def bernoulli_entropy(logits: jax.Array) -> jax.Array:
    """The entropy of Bernoulli(sigmoid(h)) from its logit h: −p log p − (1−p) log(1−p)."""
    p = jax.nn.sigmoid(logits)
    return -p * jax.nn.log_sigmoid(logits) - (1.0 - p) * jax.nn.log_sigmoid(-logits)


def discriminator_loss(
    logits_fn: Callable[[jax.Array], jax.Array],
    expert_inputs: jax.Array,
    agent_inputs: jax.Array,
    key: jax.Array,
    *,
    gradient_penalty: float,
    gradient_penalty_target: float,
    entropy_bonus: float = 0.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Binary cross-entropy (expert = 1, agent = 0) plus the gradient penalty
    ``λ (‖∇ₓ D(x̂)‖ − target)²`` on random interpolates x̂ of expert and agent inputs, minus
    ``entropy_bonus`` times the mean entropy of D's Bernoulli output on both batches."""
    expert_logits = logits_fn(expert_inputs)
    agent_logits = logits_fn(agent_inputs)
    bce = jnp.mean(jax.nn.softplus(-expert_logits)) + jnp.mean(jax.nn.softplus(agent_logits))
    mix = jax.random.uniform(key, (expert_inputs.shape[0], 1))
    interpolates = mix * expert_inputs + (1.0 - mix) * agent_inputs
    # Each logit depends on its own row only: the gradient of the sum is the per-row one.
    grads = jax.grad(lambda x: jnp.sum(logits_fn(x)))(interpolates)
    norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=-1) + 1e-12)
    penalty = jnp.mean(jnp.square(norms - gradient_penalty_target))
    entropy = jnp.mean(bernoulli_entropy(jnp.concatenate([expert_logits, agent_logits])))
    loss = bce + gradient_penalty * penalty - entropy_bonus * entropy
    accuracy = 0.5 * (jnp.mean(expert_logits > 0) + jnp.mean(agent_logits < 0))
    return loss, {
        "discriminator_loss": bce,
        "gradient_penalty": penalty,
        "discriminator_entropy": entropy,
        "discriminator_accuracy": accuracy,
    }


def critic_loss(
    q_values: jax.Array,
    rewards: jax.Array,
    discounts: jax.Array,
    next_q_values: jax.Array,
    next_log_probs: jax.Array,
    temperature: jax.Array,
    gamma: float,
) -> jax.Array:
    """Twin-Q soft Bellman error: ``q_values`` ``[2, B]``, ``next_q_values`` ``[2, B]``
    from the target critic at actions sampled by the policy in the next states."""
    next_v = jnp.min(next_q_values, axis=0) - temperature * next_log_probs
    target = jax.lax.stop_gradient(rewards + gamma * discounts * next_v)
    return jnp.mean(jnp.sum(jnp.square(q_values - target[None]), axis=0))


def actor_loss(q_values: jax.Array, log_probs: jax.Array, temperature: jax.Array) -> jax.Array:
    """SAC's policy loss: E[α log π(a|s) − min Q(s, a)], a sampled with reparameterisation."""
    return jnp.mean(temperature * log_probs - jnp.min(q_values, axis=0))


def temperature_loss(
    log_temperature: jax.Array, log_probs: jax.Array, target_entropy: float
) -> jax.Array:
    """Adjusts α so that the policy's entropy tracks ``target_entropy``."""
    return -jnp.mean(log_temperature * jax.lax.stop_gradient(log_probs + target_entropy))
