"""The POIR learner: BC and the dynamics ensemble trained together offline (one pure
update, scanned), then the ensemble fine-tuned on online experience."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlds_hub.learners import feeds, inputs
from rlds_hub.learners.normalization import MIN_STD, Normalizer
from rlds_hub.learners.parallel import DataParallel
from rlds_hub.learners.poir import distance, losses
from rlds_hub.learners.poir.config import POIRConfig
from rlds_hub.learners.poir.networks import POIRNetworks, make_networks, training_targets
from rlds_hub.learners.poir.planner import disagreement
from rlds_hub.learners.task import TaskSpec

FIELDS = (inputs.OBSERVATION, inputs.ACTION, inputs.NEXT_OBSERVATION)


class POIRState(NamedTuple):
    policy: Any
    dynamics: Any
    policy_opt: Any
    dynamics_opt: Any
    key: jax.Array
    steps: jax.Array


def delta_scale(arrays: dict[str, np.ndarray], normalizer: Normalizer) -> np.ndarray:
    """Population std of the normalised one-step changes (elements below 1e-6 -> 1)."""
    z = normalizer(arrays[inputs.OBSERVATION])
    z_next = normalizer(arrays[inputs.NEXT_OBSERVATION])
    std = np.std(np.asarray(z_next - z, np.float64), axis=0)
    return np.where(std < MIN_STD, 1.0, std).astype(np.float32)


class POIRLearner:
    """Trains POIR's networks and holds the planner's fixed parts (references, threshold).

    Args:
      data: the demonstrations as learner arrays (``observation``, ``action``,
        ``next_observation``), in dataset order.
      episode: the demonstration index of every transition (for the threshold).
    """

    def __init__(
        self,
        task: TaskSpec,
        config: POIRConfig,
        normalizer: Normalizer,
        data: dict[str, np.ndarray],
        episode: np.ndarray,
        *,
        seed: int = 0,
        parallel: DataParallel | None = None,
    ):
        config.validate()
        self.task, self.config, self.normalizer = task, config, normalizer
        self.parallel = parallel or DataParallel()
        self.networks: POIRNetworks = make_networks(task, config)
        self.demonstrations = {k: np.asarray(data[k]) for k in FIELDS}
        self.delta_std = delta_scale(self.demonstrations, normalizer)
        expert_z = normalizer(self.demonstrations[inputs.OBSERVATION]).astype(np.float32)
        anchors = distance.subset_index(len(expert_z), config.reference_states, seed)
        self.references = expert_z[anchors]
        self.continuations = distance.continuations(expert_z, episode, anchors, config.horizon)
        self.threshold = config.threshold_scale * distance.calibrate_threshold(
            expert_z,
            episode,
            k=config.knn,
            quantile=config.threshold_quantile,
            reference_states=config.reference_states,
            seed=seed,
        )
        self.optimizers = {
            "policy": optax.adam(config.bc_learning_rate),
            "dynamics": optax.adam(config.dynamics_learning_rate),
        }
        init_key, policy_key, key = jax.random.split(jax.random.PRNGKey(seed), 3)
        policy = self.networks.policy.init(policy_key)
        dynamics = self.networks.dynamics.init(init_key)
        self.state = self.parallel.replicate(
            POIRState(
                policy,
                dynamics,
                self.optimizers["policy"].init(policy),
                self.optimizers["dynamics"].init(dynamics),
                key,
                jnp.int32(0),
            )
        )
        self.constants = self.parallel.replicate(
            {"mean": normalizer.mean, "std": normalizer.std, "delta_std": self.delta_std}
        )
        members = config.ensemble_size
        self.feed = feeds.ArrayFeed(
            self.demonstrations,
            batch_size=config.batch_size * (members + 1),
            steps_per_call=config.steps_per_call,
            parallel=self.parallel,
        )
        self.steps = 0
        replicated = self.parallel.replicated
        self._offline = jax.jit(
            functools.partial(self._scan, self._joint_update),
            donate_argnums=0,
            out_shardings=(replicated, replicated),
        )
        self._finetune = jax.jit(
            functools.partial(self._scan, self._dynamics_update),
            donate_argnums=0,
            out_shardings=(replicated, replicated),
        )
        # compiled once: the trust threshold is recomputed after every fine-tuning
        self._disagreement = jax.jit(functools.partial(disagreement, self.networks))
        self._demonstration_states = self.normalizer(
            self.demonstrations[inputs.OBSERVATION]
        ).astype(np.float32)

    # -- updates -----------------------------------------------------------------------------

    def _dynamics_grads(self, params, batch, constants):
        """Gradient of the ensemble loss; ``batch`` rows are ``[E, B, ...]``."""
        z = (batch[inputs.OBSERVATION] - constants["mean"]) / constants["std"]
        z_next = (batch[inputs.NEXT_OBSERVATION] - constants["mean"]) / constants["std"]
        dynamics = self.networks.dynamics
        targets = training_targets(dynamics.target, z, z_next, constants["delta_std"])

        def loss_fn(p):
            return losses.dynamics_loss(dynamics.apply_grouped(p, z, batch[inputs.ACTION]), targets)

        return jax.value_and_grad(loss_fn)(params)

    def _apply(self, name, params, grads, opt_state):
        updates, opt_state = self.optimizers[name].update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def _joint_update(self, state: POIRState, batch, constants):
        """One BC step (the first B rows) and one step of every member (B rows each)."""
        size, members = self.config.batch_size, self.config.ensemble_size
        bc_rows = jax.tree_util.tree_map(lambda x: x[:size], batch)
        dyn_rows = jax.tree_util.tree_map(
            lambda x: x[size:].reshape(members, size, *x.shape[1:]), batch
        )

        def bc_loss(params):
            z = (bc_rows[inputs.OBSERVATION] - constants["mean"]) / constants["std"]
            return losses.bc_loss(self.networks.policy.apply(params, z), bc_rows[inputs.ACTION])

        policy_loss, grads = jax.value_and_grad(bc_loss)(state.policy)
        policy, policy_opt = self._apply("policy", state.policy, grads, state.policy_opt)
        dyn_loss, grads = self._dynamics_grads(state.dynamics, dyn_rows, constants)
        dynamics, dynamics_opt = self._apply("dynamics", state.dynamics, grads, state.dynamics_opt)
        new = state._replace(
            policy=policy,
            dynamics=dynamics,
            policy_opt=policy_opt,
            dynamics_opt=dynamics_opt,
            steps=state.steps + 1,
        )
        return new, {"bc_loss": policy_loss, "dynamics_loss": dyn_loss / members}

    def _dynamics_update(self, state: POIRState, batch, constants):
        loss, grads = self._dynamics_grads(state.dynamics, batch, constants)
        dynamics, dynamics_opt = self._apply("dynamics", state.dynamics, grads, state.dynamics_opt)
        new = state._replace(dynamics=dynamics, dynamics_opt=dynamics_opt)
        return new, {"dynamics_loss": loss / self.config.ensemble_size}

    @staticmethod
    def _scan(update, state, stacked, constants):
        state, metrics = jax.lax.scan(lambda s, b: update(s, b, constants), state, stacked)
        return state, jax.tree_util.tree_map(jnp.mean, metrics)

    def step(self, num_steps: int | None = None) -> dict[str, jax.Array]:
        """``steps_per_call`` (or ``num_steps``) offline updates in one call."""
        per_call = self.config.steps_per_call
        count = per_call if num_steps is None else min(num_steps, per_call)
        batch = self.feed.next(jax.random.fold_in(self.state.key, self.steps // per_call))
        if count < per_call:
            batch = jax.tree_util.tree_map(lambda x: x[:count], batch)
        self.state, metrics = self._offline(self.state, batch, self.constants)
        self.steps += count
        return metrics

    def finetune(
        self, rows: dict[str, np.ndarray], updates: int, rng: np.random.Generator
    ) -> dict[str, jax.Array] | None:
        """``updates`` ensemble steps on ``rows`` (demonstrations and experience), each
        member with its own batches; runs in calls of ``steps_per_call``."""
        metrics = None
        members, size = self.config.ensemble_size, self.config.batch_size
        total = len(rows[inputs.OBSERVATION])
        done = 0
        while done < updates:
            count = min(self.config.steps_per_call, updates - done)
            index = rng.integers(0, total, (count, members, size))
            stacked = {k: rows[k][index] for k in FIELDS}
            stacked = jax.device_put(stacked, self.parallel.replicated)
            self.state, metrics = self._finetune(self.state, stacked, self.constants)
            done += count
        return metrics

    # -- the planner's parameters -------------------------------------------------------------

    def trust_threshold(self) -> float:
        """The ``trust_quantile`` of the ensemble's disagreement on the demonstrations (with
        their own actions), times ``trust_scale``."""
        spread = self._disagreement(
            {"dynamics": self.state.dynamics},
            self._demonstration_states,
            self.demonstrations[inputs.ACTION],
        )
        return self.config.trust_scale * float(
            np.quantile(np.asarray(spread), self.config.trust_quantile)
        )

    def planner_params(self) -> dict[str, Any]:
        params = planner_params(
            self.state.policy,
            self.state.dynamics,
            self.references,
            self.continuations,
            self.delta_std,
            self.normalizer,
            self.threshold,
        )
        params["trust_threshold"] = jnp.float32(self.trust_threshold())
        return params


def planner_params(
    policy: Any,
    dynamics: Any,
    references: np.ndarray,
    continuations: np.ndarray,
    delta_std: np.ndarray,
    normalizer: Normalizer,
    threshold: float,
) -> dict[str, Any]:
    """What :mod:`rlds_hub.learners.poir.planner` needs (and a checkpoint's policy item)."""
    return {
        "policy": policy,
        "dynamics": dynamics,
        "references": jnp.asarray(references),
        "continuations": jnp.asarray(continuations),
        "delta_std": jnp.asarray(delta_std),
        "norm": {"mean": jnp.asarray(normalizer.mean), "std": jnp.asarray(normalizer.std)},
        "threshold": jnp.float32(threshold),
    }
