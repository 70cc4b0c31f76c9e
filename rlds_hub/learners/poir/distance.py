"""How far a state is from the expert's: the mean distance to its k nearest expert states.

States are compared in the normalised observation space (the dataset's statistics), against
a fixed reference set of expert states (all of them, or an even subsample of
``reference_states``). The out-of-distribution threshold is calibrated on the
demonstrations themselves: for each demonstration, the distances of its states to the
reference states of the *other* demonstrations; the threshold is a high quantile of those
(a state is "in distribution" when it is as close to the expert's states as the expert's own
states from a different episode usually are).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def knn_distance(states: jax.Array, references: jax.Array, k: int) -> jax.Array:
    """Mean Euclidean distance of each state ``[N, D]`` to its ``k`` nearest references
    ``[M, D]`` -> ``[N]``."""
    squared = (
        jnp.sum(jnp.square(states), axis=-1)[:, None]
        + jnp.sum(jnp.square(references), axis=-1)[None, :]
        - 2.0 * states @ references.T
    )
    nearest = -jax.lax.top_k(-squared, k)[0]
    return jnp.mean(jnp.sqrt(jnp.maximum(nearest, 0.0)), axis=-1)


def subset_index(count: int, size: int, seed: int) -> np.ndarray:
    """At most ``size`` indices of ``count`` (uniformly without replacement, sorted)."""
    if count <= size:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size, replace=False))


def reference_subset(states: np.ndarray, size: int, seed: int) -> np.ndarray:
    """At most ``size`` of ``states`` (chosen uniformly without replacement)."""
    return np.asarray(states[subset_index(len(states), size, seed)], np.float32)


def continuations(
    states: np.ndarray, episode: np.ndarray, anchors: np.ndarray, horizon: int
) -> np.ndarray:
    """``[len(anchors), horizon, D]``: the expert states 1..horizon steps after each anchor
    in its own demonstration (the episode's last state repeated past its end).

    ``states`` are in dataset order with ``episode`` the demonstration of each."""
    episode = np.asarray(episode)
    last = np.zeros(len(episode), np.int64)
    ends = np.flatnonzero(np.append(episode[1:] != episode[:-1], True))
    starts = np.concatenate([[0], ends[:-1] + 1])
    for start, end in zip(starts, ends, strict=True):
        last[start : end + 1] = end
    offsets = np.arange(1, horizon + 1)
    index = np.minimum(anchors[:, None] + offsets[None], last[anchors][:, None])
    return np.asarray(states[index], np.float32)


def tracking_cost(trajectories: jax.Array, segments: jax.Array, discounts: jax.Array) -> jax.Array:
    """Cost of each predicted trajectory ``[N, H, D]``: the discounted distance to the
    best-matching expert segment among ``segments`` ``[S, H, D]`` -> ``[N]``."""
    gaps = jnp.sqrt(
        jnp.sum(jnp.square(trajectories[:, None] - segments[None]), axis=-1) + 1e-12
    )  # [N, S, H]
    return jnp.min(jnp.sum(gaps * discounts, axis=-1), axis=1)


def calibrate_threshold(
    states: np.ndarray,
    episode: np.ndarray,
    *,
    k: int,
    quantile: float,
    reference_states: int,
    seed: int,
    chunk: int = 2048,
) -> float:
    """The ``quantile`` of leave-one-episode-out k-NN distances of the expert's states.

    With a single demonstration, its states are split in two halves instead.
    """
    states = np.asarray(states, np.float32)
    episode = np.asarray(episode)
    groups = np.unique(episode)
    if len(groups) == 1:
        episode = (np.arange(len(states)) >= len(states) // 2).astype(np.int64)
        groups = np.array([0, 1])
    distance = jax.jit(knn_distance, static_argnames="k")
    found = []
    for group in groups:
        inside = episode == group
        others = reference_subset(states[~inside], reference_states, seed)
        kk = min(k, len(others))
        queries = states[inside]
        for start in range(0, len(queries), chunk):
            found.append(np.asarray(distance(queries[start : start + chunk], others, k=kk)))
    return float(np.quantile(np.concatenate(found), quantile))
