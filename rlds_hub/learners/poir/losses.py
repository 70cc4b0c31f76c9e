"""POIR's losses: BC's regression, and the dynamics ensemble's scaled one-step error."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlds_hub.learners.bc.losses import mse


def dynamics_loss(predicted: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error of every member ``[E, B, D]`` against its targets ``[E, B, D]``
    (each member trains on its own batch), summed over members."""
    return jnp.sum(jnp.mean(jnp.square(predicted - targets), axis=(1, 2)))


def bc_loss(predicted: jax.Array, actions: jax.Array) -> jax.Array:
    return mse(predicted, actions)
