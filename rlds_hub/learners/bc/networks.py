"""BC's policy network: an MLP from normalised observations to the action head."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rlds_hub.learners.bc.config import BCConfig
from rlds_hub.learners.networks import MLP, GaussianHead
from rlds_hub.learners.task import TaskSpec


@dataclasses.dataclass(frozen=True)
class BCNetworks:
    """``init(key) -> params``, ``apply(params, obs) -> head outputs``, ``act`` (greedy)."""

    kind: str  # "mse", "tanh_gaussian" or "discrete"
    init: Callable[[jax.Array], Any]
    apply: Callable[[Any, jax.Array], Any]
    act: Callable[[Any, jax.Array], jax.Array]


def make_networks(task: TaskSpec, config: BCConfig) -> BCNetworks:
    """The policy for ``task``: regression, tanh-Gaussian, or logits over discrete actions."""
    dummy = jnp.zeros((1, task.observation_size), jnp.float32)
    if task.discrete:
        module = MLP(config.hidden_sizes, task.action_size, config.activation)
        return BCNetworks(
            "discrete",
            lambda key: module.init(key, dummy),
            module.apply,
            lambda params, obs: jnp.argmax(module.apply(params, obs), axis=-1),
        )
    if config.loss == "tanh_gaussian":
        head = GaussianHead(config.hidden_sizes, task.action_size, config.activation)
        return BCNetworks(
            "tanh_gaussian",
            lambda key: head.init(key, dummy),
            head.apply,
            lambda params, obs: jnp.tanh(head.apply(params, obs)[0]),
        )
    module = MLP(config.hidden_sizes, task.action_size, config.activation)
    return BCNetworks(
        "mse",
        lambda key: module.init(key, dummy),
        module.apply,
        lambda params, obs: jnp.clip(module.apply(params, obs), -1.0, 1.0),
    )
