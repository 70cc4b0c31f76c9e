"""BC's losses: pure functions of network outputs and dataset actions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from rlds_hub.learners.networks import tanh_gaussian_log_prob


def mse(predicted: jax.Array, actions: jax.Array) -> jax.Array:
    """Mean squared error between predicted and dataset actions (normalised space)."""
    return jnp.mean(jnp.square(predicted - actions))


def tanh_gaussian_nll(mean: jax.Array, log_std: jax.Array, actions: jax.Array) -> jax.Array:
    """Mean negative log-likelihood of actions in [-1, 1] under tanh(N(mean, std))."""
    return -jnp.mean(tanh_gaussian_log_prob(mean, log_std, actions))


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy of integer class labels."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def bc_loss(kind: str, outputs, actions: jax.Array) -> jax.Array:
    """The loss of a BC head (``kind`` as in :class:`BCNetworks`)."""
    if kind == "discrete":
        return cross_entropy(outputs, actions)
    if kind == "tanh_gaussian":
        return tanh_gaussian_nll(*outputs, actions)
    return mse(outputs, actions)
