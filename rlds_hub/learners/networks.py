"""Network pieces shared by the learners: MLPs and the tanh-squashed Gaussian.

Pure definitions (flax.linen modules and functions of arrays); each learner's
``networks.py`` builds its networks from these.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "silu": nn.silu,
}
_LOG_2PI = math.log(2 * math.pi)
# Keeps atanh finite for actions on the bounds (expert actions are often clipped there).
_TANH_EPS = 1e-6


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Dense layers with an activation between them; the last layer is linear.

    ``spectral_norm``: every layer's weight divided by its largest singular value (one
    power-iteration step per call with ``update_stats``; the vectors live in the
    ``batch_stats`` collection), as an option for discriminators.
    """

    hidden_sizes: Sequence[int]
    output_size: int
    activation: str = "relu"
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        act = activation(self.activation)
        sizes = [*self.hidden_sizes, self.output_size]
        for i, size in enumerate(sizes):
            dense = nn.Dense(size, name=f"dense_{i}")
            if self.spectral_norm:
                x = nn.SpectralNorm(dense, name=f"spectral_{i}")(x, update_stats=update_stats)
            else:
                x = dense(x)
            if i < len(sizes) - 1:
                x = act(x)
        return x


class GaussianHead(nn.Module):
    """An MLP giving the mean and log-std of a diagonal Gaussian (before the tanh)."""

    hidden_sizes: Sequence[int]
    action_size: int
    activation: str = "relu"
    min_log_std: float = -5.0
    max_log_std: float = 2.0

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden_sizes, 2 * self.action_size, self.activation, name="torso")(x)
        mean, raw = jnp.split(out, 2, axis=-1)
        # Smooth squashing of the log-std into its range (as in SAC implementations).
        log_std = self.min_log_std + 0.5 * (self.max_log_std - self.min_log_std) * (
            jnp.tanh(raw) + 1.0
        )
        return mean, log_std


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, value: jax.Array) -> jax.Array:
    """Log-density of a diagonal Gaussian, summed over the last axis."""
    z = (value - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z * z - log_std - 0.5 * _LOG_2PI, axis=-1)


def tanh_log_det(pre_tanh: jax.Array) -> jax.Array:
    """log |d tanh(u)/du| summed over the last axis, in a numerically stable form."""
    return jnp.sum(2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)), axis=-1)


def tanh_gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """Log-likelihood of actions in ``[-1, 1]`` under ``tanh(N(mean, std))``."""
    clipped = jnp.clip(action, -1.0 + _TANH_EPS, 1.0 - _TANH_EPS)
    pre_tanh = jnp.arctanh(clipped)
    return gaussian_log_prob(mean, log_std, pre_tanh) - tanh_log_det(pre_tanh)


def sample_tanh_gaussian(
    key: jax.Array, mean: jax.Array, log_std: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """A reparameterised sample of ``tanh(N(mean, std))`` and its log-probability."""
    pre_tanh = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    log_prob = gaussian_log_prob(mean, log_std, pre_tanh) - tanh_log_det(pre_tanh)
    return jnp.tanh(pre_tanh), log_prob
