"""The return-to-distribution planner (MPPI with the BC policy as proposal) and the switch.

Pure JAX functions of the agent's parameters::

    params = {"policy": BC params, "dynamics": stacked ensemble params,
              "references": expert states [M, D] (normalised), "delta_std": [D],
              "norm": {"mean", "std"}, "threshold": scalar}

:func:`plan` rolls ``num_samples`` action sequences through the ensemble — sequence i uses
member ``i // (num_samples / E)``; sequence 0 is the noise-free BC rollout, so plain BC is
always a candidate; the last ones open with a push (the action held at a bound for a few
steps, then BC: the sustained correction a drifting state needs, which noise around BC's
weak off-distribution actions does not produce) — and returns their cost-weighted average.
:func:`act` is one decision: the BC action when the state is within the calibrated distance
of the expert's states, the planner's otherwise — provided the ensemble is as confident there as it is on the
demonstrations (``trust``): a planner is only as good as its model, and off the
demonstrations a model trained on them alone is not (``lax.cond``: the planner's cost is
paid only when it is used).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rlds_hub.learners.poir.config import POIRConfig
from rlds_hub.learners.poir.distance import knn_distance, tracking_cost
from rlds_hub.learners.poir.networks import POIRNetworks, next_states

MODES = {"switch": 0, "plan": 1, "bc": 2}


def normalise(params: dict[str, Any], observations: jax.Array) -> jax.Array:
    return (observations - params["norm"]["mean"]) / params["norm"]["std"]


def bc_actions(networks: POIRNetworks, params: dict[str, Any], z: jax.Array) -> jax.Array:
    return jnp.clip(networks.policy.apply(params["policy"], z), -1.0, 1.0)


def predict(
    networks: POIRNetworks, params: dict[str, Any], z: jax.Array, actions: jax.Array, groups: int
) -> jax.Array:
    """Next normalised states of ``[N, D]`` states, group g of N/E rows through member g."""
    n, d = z.shape
    size = networks.dynamics.size
    outputs = networks.dynamics.apply_grouped(
        params["dynamics"],
        z.reshape(size, n // size, d),
        actions.reshape(size, n // size, actions.shape[-1]),
    )
    return next_states(networks.dynamics.target, outputs.reshape(n, d), z, params["delta_std"])


def nearest_references(references: jax.Array, z: jax.Array, count: int) -> jax.Array:
    """Indices of the ``count`` references nearest to the state ``z`` ``[D]``."""
    squared = jnp.sum(jnp.square(references - z[None]), axis=-1)
    return jax.lax.top_k(-squared, count)[1]


def plan(
    networks: POIRNetworks,
    config: POIRConfig,
    params: dict[str, Any],
    z0: jax.Array,
    previous: jax.Array,
    has_previous: jax.Array,
    key: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The weighted-average plan ``[H, A]`` from normalised state ``z0`` ``[D]``.

    ``previous``: the last plan shifted by one step (mixed into the proposals by
    ``plan_mixing`` when ``has_previous``).
    """
    n, horizon = config.num_samples, config.horizon
    keys = jax.random.split(key, horizon)
    mixing = jnp.where(has_previous, config.plan_mixing, 0.0)
    # Sequence 0: BC itself; then BC plus narrow noise; the last ``wide_fraction`` of the
    # sequences get wide noise, so corrections far from BC's action can be found.
    wide = round(config.wide_fraction * n)
    noise_scale = jnp.concatenate(
        [
            jnp.zeros((1, 1)),
            jnp.full((n - 1 - wide, 1), config.proposal_noise),
            jnp.full((wide, 1), config.wide_noise),
        ]
    )
    pushes = push_schedule(config, n)  # [N] sign of the push, [N] its length in steps

    def step(z, inputs):
        t_key, previous_action, t = inputs
        proposal = bc_actions(networks, params, z)
        noise = noise_scale * jax.random.normal(t_key, proposal.shape)
        proposal = proposal + noise
        mixed = (1.0 - mixing) * proposal + mixing * previous_action[None]
        actions = jnp.clip(jnp.where(jnp.arange(n)[:, None] == 0, proposal, mixed), -1.0, 1.0)
        # Push sequences: the action at a bound for their first steps, then BC.
        pushing = (t < pushes[1])[:, None]
        actions = jnp.where(pushing, pushes[0][:, None], actions)
        z_next = predict(networks, params, z, actions, networks.dynamics.size)
        return z_next, (actions, z_next)

    start = jnp.broadcast_to(z0, (n, z0.shape[-1]))
    steps = (keys, previous, jnp.arange(horizon))
    _, (actions, states) = jax.lax.scan(step, start, steps)  # [H, N, ...]
    total = score_trajectories(config, params, z0, states)
    bc_cost = total[0]
    chosen, cost = weighted_average(config, actions, total)
    # Refinements (CEM-like): open-loop sequences around the current plan, narrower each
    # time; the plan itself is always among them.
    for iteration in range(1, config.iterations):
        key, sub = jax.random.split(key)
        scale = config.proposal_noise * 0.5**iteration
        noise = scale * jax.random.normal(sub, (horizon, n, chosen.shape[-1]))
        candidates = jnp.clip(chosen[:, None] + noise.at[:, 0].set(0.0), -1.0, 1.0)

        def rollout(z, a):
            z_next = predict(networks, params, z, a, networks.dynamics.size)
            return z_next, z_next

        _, states = jax.lax.scan(rollout, start, candidates)
        chosen, cost = weighted_average(
            config, candidates, score_trajectories(config, params, z0, states)
        )
    return chosen, {"plan_cost": cost, "bc_cost": bc_cost}


def score_trajectories(
    config: POIRConfig, params: dict[str, Any], z0: jax.Array, states: jax.Array
) -> jax.Array:
    """The cost ``[N]`` of predicted trajectories ``[H, N, D]`` from the state ``z0``.

    ``cost="tracking"``: the discounted distance to the best-matching of the expert segments
    that start nearest to ``z0``; ``cost="knn"``: the discounted k-NN distance of each state.
    """
    discounts = config.cost_discount ** jnp.arange(states.shape[0], dtype=jnp.float32)
    if config.cost == "knn":
        costs = jax.vmap(lambda z: knn_distance(z, params["references"], config.knn))(states)
        return jnp.sum(costs * discounts[:, None], axis=0)
    nearest = nearest_references(params["references"], z0, config.segments)
    segments = params["continuations"][nearest]  # [S, H, D]
    return tracking_cost(jnp.swapaxes(states, 0, 1), segments, discounts)


def weighted_average(
    config: POIRConfig, actions: jax.Array, total: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """MPPI's plan ``[H, A]`` from sequences ``[H, N, A]`` and their costs ``[N]``
    (weights ``softmax(-temperature * standardised cost)``; ``aggregation="top_k"``: the
    mean of the ``top_k`` cheapest sequences), and its expected cost."""
    if config.aggregation == "top_k":
        best = jax.lax.top_k(-total, config.top_k)[1]
        return jnp.mean(actions[:, best], axis=1), jnp.mean(total[best])
    standardised = (total - jnp.min(total)) / (jnp.std(total) + 1e-6)
    weights = jax.nn.softmax(-config.temperature * standardised)
    return jnp.einsum("n,hna->ha", weights, actions), jnp.sum(weights * total)


def push_schedule(config: POIRConfig, n: int) -> tuple[jax.Array, jax.Array]:
    """Sign and length of each sequence's opening push (length 0: no push).

    The last ``2 * len(push_fractions)`` sequences push at -1 and +1 (every action element)
    for ``fraction * horizon`` steps each, then follow the BC proposal: sustained corrections
    that noise around BC's actions, averaging out step by step, does not reach."""
    lengths = [max(1, round(f * config.horizon)) for f in config.push_fractions]
    sign = [0.0] * n
    length = [0] * n
    for j, (s, d) in enumerate((s, d) for s in (-1.0, 1.0) for d in lengths):
        sign[n - 1 - j], length[n - 1 - j] = s, d
    return jnp.asarray(sign, jnp.float32), jnp.asarray(length, jnp.int32)


def act(
    networks: POIRNetworks,
    config: POIRConfig,
    params: dict[str, Any],
    observation: jax.Array,
    carry: dict[str, jax.Array],
    key: jax.Array,
    mode: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array], dict[str, jax.Array]]:
    """One decision for a flattened observation ``[D]``: (normalised action ``[A]``, new
    carry, info with ``distance`` and ``planned``).

    ``carry``: ``{"plan": [H, A], "valid": bool}`` — the previous plan (for warm starts).
    ``mode``: :data:`MODES` value (0 switch, 1 always plan, 2 BC only).
    """
    z = normalise(params, observation)
    distance = knn_distance(z[None], params["references"], config.knn)[0]
    out_of_distribution = distance > params["threshold"]
    bc_action = bc_actions(networks, params, z[None])
    spread = disagreement(networks, params, z[None], bc_action)[0]
    trusted = spread <= params["trust_threshold"]
    switch = out_of_distribution & trusted if config.trust else out_of_distribution
    use_planner = jnp.where(mode == 1, True, jnp.where(mode == 2, False, switch))
    shifted = jnp.concatenate([carry["plan"][1:], carry["plan"][-1:]], axis=0)

    def planner(_):
        chosen, info = plan(networks, config, params, z, shifted, carry["valid"], key)
        return chosen[0], chosen, info["plan_cost"]

    def behaviour_cloning(_):
        return bc_action[0], carry["plan"], jnp.float32(0.0)

    action, new_plan, cost = jax.lax.cond(use_planner, planner, behaviour_cloning, None)
    new_carry = {"plan": new_plan, "valid": use_planner}
    return (
        action,
        new_carry,
        {"distance": distance, "planned": use_planner, "plan_cost": cost, "disagreement": spread},
    )


def disagreement(
    networks: POIRNetworks, params: dict[str, Any], z: jax.Array, actions: jax.Array
) -> jax.Array:
    """How much the ensemble members disagree on the next state of each ``(z, a)`` ``[B]``:
    the mean over elements of the members' std of their output (the scaled change, or the
    next normalised state with ``dynamics_target="next"``; the trust threshold is calibrated
    on the same quantity)."""
    predictions = networks.dynamics.apply(params["dynamics"], z, actions)  # [E, B, D]
    return jnp.mean(jnp.std(predictions, axis=0), axis=-1)
