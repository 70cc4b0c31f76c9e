"""POIR's networks: the BC policy (as BC's) and a deterministic dynamics ensemble.

The dynamics model works in the normalised observation space z = (s − μ) / σ (the dataset's
statistics): member e predicts the scaled change ``(z' − z) / σ_Δ`` from ``(z, a)``, with
σ_Δ the population std of the demonstrations' changes (≥ 1e-6), so every output element
has unit scale whatever the units of the observation — or, with
``dynamics_target="next"`` (Acme MBOP's choice), the next normalised observation ``z'``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rlds_hub.learners.bc.config import BCConfig
from rlds_hub.learners.bc.networks import BCNetworks
from rlds_hub.learners.bc.networks import make_networks as make_bc_networks
from rlds_hub.learners.networks import MLP
from rlds_hub.learners.poir.config import POIRConfig
from rlds_hub.learners.task import TaskSpec


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """``init(key) -> stacked params [E, ...]``; ``apply(params, z, a) -> [E, B, D]`` (every
    member on the same inputs); ``apply_grouped(params, z [E, n, D], a [E, n, A])``;
    ``target``: what the members output (``"change"`` or ``"next"``, see the module)."""

    size: int
    target: str
    init: Callable[[jax.Array], Any]
    apply: Callable[[Any, jax.Array, jax.Array], jax.Array]
    apply_grouped: Callable[[Any, jax.Array, jax.Array], jax.Array]


def make_ensemble(task: TaskSpec, config: POIRConfig) -> Ensemble:
    member = MLP(config.dynamics_hidden_sizes, task.observation_size)
    dummy = jnp.zeros((1, task.observation_size + task.action_size))

    def init(key):
        return jax.vmap(lambda k: member.init(k, dummy))(
            jax.random.split(key, config.ensemble_size)
        )

    def one(params, z, a):
        return member.apply(params, jnp.concatenate([z, a], axis=-1))

    return Ensemble(
        config.ensemble_size,
        config.dynamics_target,
        init,
        jax.vmap(one, in_axes=(0, None, None)),
        jax.vmap(one, in_axes=(0, 0, 0)),
    )


def training_targets(
    target: str, z: jax.Array, z_next: jax.Array, delta_std: jax.Array
) -> jax.Array:
    """What the members learn to output for the transition ``z -> z_next``."""
    return z_next if target == "next" else (z_next - z) / delta_std


def next_states(target: str, outputs: jax.Array, z: jax.Array, delta_std: jax.Array) -> jax.Array:
    """The next normalised states the members' ``outputs`` from ``z`` stand for."""
    return outputs if target == "next" else z + outputs * delta_std


def bc_config(config: POIRConfig) -> BCConfig:
    """The BC part's settings (a regression policy, BC's defaults otherwise)."""
    return BCConfig(
        loss="mse",
        hidden_sizes=config.bc_hidden_sizes,
        learning_rate=config.bc_learning_rate,
        batch_size=config.batch_size,
        steps_per_call=config.steps_per_call,
    )


@dataclasses.dataclass(frozen=True)
class POIRNetworks:
    policy: BCNetworks
    dynamics: Ensemble


def make_networks(task: TaskSpec, config: POIRConfig) -> POIRNetworks:
    if task.discrete:
        from rlds_hub.learners.errors import LearnerError

        raise LearnerError("POIR plans continuous actions; use bc for discrete ones")
    return POIRNetworks(make_bc_networks(task, bc_config(config)), make_ensemble(task, config))
