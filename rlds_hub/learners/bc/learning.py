"""The BC learner: state, one pure update, ``lax.scan`` over ``steps_per_call`` updates."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlds_hub.learners import feeds, inputs
from rlds_hub.learners.bc.config import BCConfig
from rlds_hub.learners.bc.losses import bc_loss
from rlds_hub.learners.bc.networks import BCNetworks, make_networks
from rlds_hub.learners.normalization import Normalizer
from rlds_hub.learners.parallel import DataParallel
from rlds_hub.learners.task import TaskSpec

FIELDS = (inputs.OBSERVATION, inputs.ACTION)


class TrainingState(NamedTuple):
    params: Any
    opt_state: Any
    key: jax.Array  # data sampling key (folded with the call number)
    steps: jax.Array  # SGD steps done


def update(
    networks: BCNetworks,
    optimizer: optax.GradientTransformation,
    state: TrainingState,
    batch: dict[str, jax.Array],
    norm: dict[str, jax.Array],
) -> tuple[TrainingState, jax.Array]:
    """One SGD step on a batch: (state, batch) -> (state, loss). Pure."""

    def loss_fn(params):
        observations = (batch["observation"] - norm["mean"]) / norm["std"]
        return bc_loss(networks.kind, networks.apply(params, observations), batch["action"])

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state._replace(params=params, opt_state=opt_state, steps=state.steps + 1), loss


def update_many(networks, optimizer, state, stacked, norm):
    """``lax.scan`` of :func:`update` over stacked batches ``[K, B, ...]``."""
    step = functools.partial(update, networks, optimizer)
    state, losses = jax.lax.scan(lambda s, b: step(s, b, norm), state, stacked)
    return state, {"loss": jnp.mean(losses), "final_loss": losses[-1]}


class BCLearner:
    """Trains a BC policy from a feed of transitions (see :mod:`rlds_hub.learners.feeds`).

    Args:
      task / normalizer: what the data holds and how observations are scaled.
      data: learner arrays (:func:`rlds_hub.learners.inputs.load_transitions`), an
        InMemorySampler, or any iterable of transition batches (a loader, ``tf.data``).
      seed: initialises the network and the sampling of batches.
      parallel: the device mesh (default: every local device).
    """

    def __init__(
        self,
        task: TaskSpec,
        config: BCConfig,
        normalizer: Normalizer,
        data: Any,
        *,
        seed: int = 0,
        parallel: DataParallel | None = None,
    ):
        config.validate()
        self.task, self.config = task, config
        self.parallel = parallel or DataParallel()
        self.networks = make_networks(task, config)
        self.optimizer = optax.adam(config.learning_rate)
        init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
        params = self.networks.init(init_key)
        self.state = self.parallel.replicate(
            TrainingState(params, self.optimizer.init(params), data_key, jnp.int32(0))
        )
        self.normalizer = normalizer
        self.norm = self.parallel.replicate({"mean": normalizer.mean, "std": normalizer.std})
        self.feed = feeds.make_feed(
            data,
            task,
            fields=FIELDS,
            batch_size=config.batch_size,
            steps_per_call=config.steps_per_call,
            parallel=self.parallel,
        )
        self.steps = 0
        replicated = self.parallel.replicated
        self._update_many = jax.jit(
            functools.partial(update_many, self.networks, self.optimizer),
            donate_argnums=0,
            out_shardings=(replicated, replicated),
        )
        self._act = jax.jit(self._greedy)

    def _greedy(self, params, norm, observations):
        return self.networks.act(params, (observations - norm["mean"]) / norm["std"])

    def step(self, num_steps: int | None = None) -> dict[str, jax.Array]:
        """Runs ``steps_per_call`` SGD steps (or fewer, ``num_steps``) in one jitted call;
        the metrics stay on the device (reading them waits for the call).

        Raises:
          StopIteration: the data source ran out.
        """
        per_call = self.config.steps_per_call
        count = per_call if num_steps is None else min(num_steps, per_call)
        batch = self.feed.next(jax.random.fold_in(self.state.key, self.steps // per_call))
        if count < per_call:  # the last call of a budget that is not a multiple
            batch = jax.tree_util.tree_map(lambda x: x[:count], batch)
        self.state, metrics = self._update_many(self.state, batch, self.norm)
        self.steps += count
        return metrics

    def act(self, observations: np.ndarray) -> np.ndarray:
        """Greedy network outputs for flattened observations ``[B, obs_size]``."""
        return np.asarray(self._act(self.state.params, self.norm, observations))

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint_state(self) -> dict[str, Any]:
        return {"learner": self.state}

    def restore(self, restored: dict[str, Any]) -> None:
        self.state = self.parallel.replicate(restored["learner"])
        self.steps = int(self.state.steps)

    def policy_params(self) -> dict[str, Any]:
        return {"policy": self.state.params}

    def close(self) -> None:
        self.feed.close()
