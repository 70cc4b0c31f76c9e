"""NumPy twins of :func:`rlds_hub.transforms.transition_indices` and ``window_indices``.

The loaders work on NumPy arrays (see :mod:`rlds_hub.format.decode`), so they compute which
steps make each transition or window with these; the TensorFlow versions serve ``tf.data``
pipelines. Both follow the same definitions (Acme's n-step semantics, windows laid out as
``episode_windows``), and ``tests/data/test_data_loading.py`` checks they agree on random
episodes.
"""

from __future__ import annotations

import numpy as np

from rlds_hub.checks import check_gamma, check_positive


def transition_indices(
    lengths: np.ndarray,
    rewards: np.ndarray,
    discounts: np.ndarray,
    is_terminal: np.ndarray,
    n_step: int = 1,
    gamma: float = 1.0,
    order: np.ndarray | None = None,
    final_transition: bool = False,
) -> dict[str, np.ndarray]:
    """(n-step) transitions of episodes whose steps are concatenated, as indices.

    ``lengths`` are the episodes' step counts. Returns ``source`` (every step but each
    episode's last), ``next`` (o_{i+m}), ``reward`` and ``discount``; ``order``, a
    permutation of the transitions, reorders them (e.g. to shuffle).

    ``final_transition`` is for the Open X-Embodiment layout, where the last step holds a
    real action and reward: every step is then a source, the last step's transition has
    its own observation as ``next`` and a discount of 0 when it is terminal, and
    ``is_terminal`` (true on the last step only) ends the episode *after* that step.
    """
    check_positive("n_step", n_step)
    check_gamma(gamma)
    lengths = np.asarray(lengths, np.int64)
    reward = np.asarray(rewards)
    dtype = reward.dtype if reward.dtype.kind == "f" else np.dtype(np.float32)
    reward = reward.astype(dtype, copy=False)
    discount = np.asarray(discounts).astype(dtype, copy=False)
    rank = max(reward.ndim, discount.ndim)
    reward = reward.reshape(reward.shape + (1,) * (rank - reward.ndim))
    discount = discount.reshape(discount.shape + (1,) * (rank - discount.ndim))
    is_terminal = np.asarray(is_terminal, bool)
    ends = np.cumsum(lengths)
    last = max(len(reward) - 1, 0)
    if final_transition:
        source = np.arange(len(reward))
    else:
        is_source = np.ones(len(reward), bool)
        is_source[ends[lengths > 0] - 1] = False
        source = np.flatnonzero(is_source)
    if order is not None:
        source = source[order]

    def per_step(x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape + (1,) * (rank - 1))

    if n_step == 1 and not final_transition:
        # One-step transitions: the discount (0 where the next step is terminal) is made in
        # step order, then gathered once with the reward; a source is never a last step.
        next_terminal = np.zeros(len(is_terminal), bool)
        next_terminal[:-1] = is_terminal[1:]
        step_discount = np.where(per_step(next_terminal), 0, discount).astype(dtype, copy=False)
        total_reward, total_discount = reward[source], step_discount[source]
        if rank == 1:
            total_reward, total_discount = total_reward.reshape(-1), total_discount.reshape(-1)
        return {
            "source": source,
            "next": source + 1,
            "reward": total_reward,
            "discount": total_discount,
        }
    episode_end = ends[np.searchsorted(ends, source, side="right")]  # exclusive
    # Steps whose rewards the transition sums: up to the episode's last step (oxe) or
    # up to the one before it (rlds: the last step's reward is zero-filled).
    reward_end = episode_end if final_transition else episode_end - 1
    window = np.minimum(reward_end - source, n_step)
    total_reward = reward[source]
    total_discount = discount[source]
    weight = total_discount
    for k in range(1, n_step):
        in_window = k < window
        at = np.minimum(source + k, last)
        total_reward = total_reward + np.where(
            per_step(in_window), (gamma**k) * weight * reward[at], 0
        ).astype(dtype)
        weight = weight * discount[at]
        total_discount = np.where(
            per_step(in_window), total_discount * gamma * discount[at], total_discount
        ).astype(dtype)
    if final_transition:  # is_terminal on the last step ends the episode after that step
        episode_last = episode_end - 1
        reaches_terminal = (source + window == episode_end) & is_terminal[episode_last]
        following = np.minimum(source + window, episode_last)
    else:  # is_terminal on step i + m: the transition reaching it ends in a terminal state
        reaches_terminal = is_terminal[np.minimum(source + window, last)].copy()
        for k in range(1, n_step):
            reaches_terminal |= (k < window) & is_terminal[np.minimum(source + k, last)]
        following = source + window
    total_discount = np.where(per_step(reaches_terminal), 0, total_discount).astype(dtype)
    if rank == 1:
        total_reward, total_discount = total_reward.reshape(-1), total_discount.reshape(-1)
    return {"source": source, "next": following, "reward": total_reward, "discount": total_discount}


def missing_discounts(
    lengths: np.ndarray, is_terminal: np.ndarray, final_transition: bool = False
) -> np.ndarray:
    """float32 per-step discounts for a dataset without a ``discount`` field (most of Open
    X-Embodiment): 1, and 0 on the step whose transition ends in a terminal state — the
    terminal last step itself with ``final_transition`` (the oxe layout), else the step
    before it, and the zero-filled last step of every episode (the rlds layout)."""
    lengths = np.asarray(lengths, np.int64)
    terminal = np.asarray(is_terminal, bool).reshape(-1)
    discount = np.ones(len(terminal), np.float32)
    last = (np.cumsum(lengths) - 1)[lengths > 0]
    if final_transition:
        discount[last[terminal[last]]] = 0.0
    else:
        discount[last] = 0.0
        before = last[terminal[last] & (lengths[lengths > 0] > 1)] - 1
        discount[before] = 0.0
    return discount


def window_counts(lengths: np.ndarray, size: int, shift: int, pad: bool) -> np.ndarray:
    """How many windows each episode gives."""
    lengths = np.asarray(lengths, np.int64)
    if pad:
        return np.minimum(-(-lengths // shift), 1 + -(-np.maximum(lengths - size, 0) // shift))
    return np.maximum((lengths - size) // shift + 1, 0)


def window_indices(
    lengths: np.ndarray,
    size: int,
    shift: int = 1,
    pad: bool = True,
    order: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Windows of episodes whose steps are concatenated: ``index`` [W, size] (padding repeats
    the episode's last step) and ``mask`` [W, size]; ``order`` permutes the windows."""
    check_positive("size", size)
    check_positive("shift", shift)
    lengths = np.asarray(lengths, np.int64)
    counts = window_counts(lengths, size, shift, pad)
    window = np.arange(counts.sum())
    if order is not None:
        window = window[order]
    firsts = np.cumsum(counts) - counts
    segment = np.searchsorted(np.cumsum(counts), window, side="right")
    positions = (window - firsts[segment])[:, None] * shift + np.arange(size)[None, :]
    length = lengths[segment][:, None]
    start = (np.cumsum(lengths) - lengths)[segment][:, None]
    return {
        "index": start + np.minimum(positions, np.maximum(length - 1, 0)),
        "mask": positions < length,
    }


def check_history(history: object) -> None:
    """Raises ``ValueError`` unless ``history`` is an integer >= 0."""
    if isinstance(history, bool) or not isinstance(history, int) or history < 0:
        raise ValueError(
            f"history must be an integer >= 0 (how many earlier frames), got {history!r}"
        )


def step_indices(
    lengths: np.ndarray,
    history: int = 0,
    action_chunk: int = 1,
    final_action: bool = False,
    order: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Single steps of episodes whose steps are concatenated, with frame history and action
    chunks, as indices (every step is an item; ``order`` permutes them).

    Returns ``step`` [N] (the item's step), ``episode`` [N] (its episode's position in
    ``lengths``), ``position`` [N] (its index in the episode), ``history`` [N, H + 1] (steps
    ``t - H .. t``, oldest first, the episode's first step repeated before it) with
    ``history_mask`` (False on those repeats), and ``chunk`` [N, C] (steps ``t .. t + C - 1``,
    the episode's last step repeated past its end) with ``chunk_mask`` (False past the last
    real action: the last step's action is real only with ``final_action``, the oxe layout).
    """
    check_history(history)
    check_positive("action_chunk", action_chunk)
    lengths = np.asarray(lengths, np.int64)
    step = np.arange(int(lengths.sum()))
    if order is not None:
        step = step[order]
    episode = np.repeat(np.arange(len(lengths)), lengths)[step]
    start = (np.cumsum(lengths) - lengths)[episode]
    position = step - start
    length = lengths[episode]
    past = position[:, None] + np.arange(-history, 1)[None, :]
    ahead = position[:, None] + np.arange(action_chunk)[None, :]
    real_actions = length if final_action else length - 1
    return {
        "step": step,
        "episode": episode,
        "position": position,
        "history": start[:, None] + np.maximum(past, 0),
        "history_mask": past >= 0,
        "chunk": start[:, None] + np.minimum(ahead, length[:, None] - 1),
        "chunk_mask": ahead < real_actions[:, None],
    }
