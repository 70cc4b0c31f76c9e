"""Per-episode vectorised kernels for learners: (n-step) transitions and windows.

The kernels take a whole episode's steps as a dict of tensors with a leading time axis of
length T+1 (T transitions; the last step holds the final observation and zero-filled
action, reward and discount) and are meant to run inside ``tf.data`` map functions. The
dataset-level wrappers apply them to every episode of an RLDS dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf

from rlds_hub import rlds_types
from rlds_hub.transforms import nested_ops
from rlds_hub.transforms._checks import check_gamma, check_keys, check_positive, require_dataset

TRANSITION_FIELDS = (
    rlds_types.OBSERVATION,
    rlds_types.ACTION,
    rlds_types.REWARD,
    rlds_types.DISCOUNT,
    "next_observation",
)
MASK = "mask"
# ``discount`` may be missing (most of Open X-Embodiment has none): it then reads as 1.
_REQUIRED = (rlds_types.OBSERVATION, rlds_types.ACTION, rlds_types.REWARD, rlds_types.IS_TERMINAL)


def _check_transition_args(
    available: Sequence[str], n_step: int, gamma: float, extra_keys: Sequence[str]
) -> None:
    check_positive("n_step", n_step)
    check_gamma(gamma)
    if isinstance(extra_keys, str):
        raise ValueError(f"extra_keys must be a sequence of field names, got {extra_keys!r}")
    clashes = sorted(set(extra_keys) & set(TRANSITION_FIELDS))
    if clashes:
        raise ValueError(f"extra_keys {clashes} clash with the transition fields")
    check_keys([*_REQUIRED, *extra_keys], available, where="step")


def _trailing_dims(x: tf.Tensor, rank: int) -> tf.Tensor:
    """Appends size-1 axes to ``x`` until it has ``rank`` axes (per-step broadcasting)."""
    return tf.reshape(x, tf.concat([tf.shape(x), tf.ones([rank - x.shape.rank], tf.int32)], 0))


def transition_indices(
    lengths: tf.Tensor,
    rewards: tf.Tensor,
    discounts: tf.Tensor,
    is_terminal: tf.Tensor,
    n_step: int = 1,
    gamma: float = 1.0,
    shuffle_seed: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """(n-step) transitions of several episodes whose steps are concatenated, as indices.

    ``lengths`` [B] are the episodes' step counts and the other tensors hold their S steps
    one after another. Returns ``source`` [N] (the step each transition starts from: every
    step but each episode's last), ``next`` [N] (the step whose observation it reaches),
    and its n-step ``reward`` and ``discount`` (see :func:`episode_transitions`). Gathering
    observations and actions at these indices is left to the caller, so a loader can do it
    in one pass (e.g. while shuffling). With ``shuffle_seed`` (a shape-[2] integer tensor)
    the transitions come in a random order (a stateless permutation of that seed).
    """
    check_positive("n_step", n_step)
    check_gamma(gamma)
    lengths = tf.cast(tf.convert_to_tensor(lengths), tf.int64)
    reward = tf.convert_to_tensor(rewards)
    dtype = reward.dtype if reward.dtype.is_floating else tf.float32
    reward = tf.cast(reward, dtype)
    discount = tf.cast(tf.convert_to_tensor(discounts), dtype)
    rank = max(reward.shape.rank, discount.shape.rank)
    reward, discount = _trailing_dims(reward, rank), _trailing_dims(discount, rank)
    is_terminal = tf.cast(tf.convert_to_tensor(is_terminal), tf.bool)
    num_steps = tf.shape(reward, out_type=tf.int64)[0]
    last = tf.maximum(num_steps - 1, 0)
    ends = tf.cumsum(lengths)
    # Every step but each episode's last is a source (ragged range: one C++ op).
    source = tf.ragged.range(ends - lengths, tf.maximum(ends - 1, ends - lengths)).flat_values
    if shuffle_seed is not None:  # permute now: everything below is gathered in this order
        source = tf.random.experimental.stateless_shuffle(source, seed=shuffle_seed)
    if n_step == 1:
        window = tf.ones_like(source)
    else:  # m = min(n, T - i): transitions left from step i to its episode's end
        episode_last = tf.gather(ends - 1, tf.searchsorted(ends, source, side="right"))
        window = tf.minimum(episode_last - source, n_step)

    def per_step(x: tf.Tensor) -> tf.Tensor:
        return tf.reshape(x, tf.concat([tf.shape(x), tf.ones([rank - 1], tf.int32)], 0))

    total_reward = tf.gather(reward, source)
    total_discount = tf.gather(discount, source)
    weight = total_discount  # Π_{j<k} d_{i+j}; times γ^k below
    reaches_terminal = tf.gather(is_terminal, tf.minimum(source + 1, last))
    for k in range(1, n_step):
        in_window = k < window
        at = tf.minimum(source + k, last)
        next_reward, next_discount = tf.gather(reward, at), tf.gather(discount, at)
        contribution = (gamma**k) * weight * next_reward
        total_reward += tf.where(per_step(in_window), contribution, tf.zeros_like(contribution))
        weight *= next_discount
        total_discount = tf.where(
            per_step(in_window), total_discount * gamma * next_discount, total_discount
        )
        reaches_terminal |= in_window & tf.gather(is_terminal, tf.minimum(source + k + 1, last))
    total_discount = tf.where(
        per_step(reaches_terminal), tf.zeros_like(total_discount), total_discount
    )
    return {
        "source": source,
        "next": source + window,
        rlds_types.REWARD: total_reward,
        rlds_types.DISCOUNT: total_discount,
    }


def episode_transitions(
    steps: Mapping[str, Any],
    n_step: int = 1,
    gamma: float = 1.0,
    extra_keys: Sequence[str] = (),
) -> dict[str, Any]:
    """Returns the T (n-step) transitions of one episode, with Acme's N-step semantics.

    ``steps`` maps step fields to tensors of T+1 steps. With m = min(n_step, T - i), the
    transition from step i has ``observation`` o_i, ``action`` a_i, ``next_observation``
    o_{i+m} and (d_i = 1 for every step when ``steps`` has no ``discount``)

    * ``reward`` = Σ_{k<m} γ^k (Π_{j<k} d_{i+j}) r_{i+k}
    * ``discount`` = γ^(m-1) Π_{j<m} d_{i+j}, and 0 if a step in i+1..i+m is terminal.

    As in Acme's ``NStepTransitionAdder`` the discount carries one γ fewer than the number of
    rewards summed, because the learner applies its own γ once when bootstrapping
    (target = reward + γ · discount · V(next_observation)); for n_step=1 it is d_i. Truncated
    episodes keep a non-zero discount at their end. The zero-filled last step is never
    used as an action or reward. ``extra_keys`` are step fields copied from step i. Reward
    and discount are float64 when the reward is float64, else in the reward's float dtype
    (float32 for integer rewards). Observations and actions may be nests.

    Raises:
      ValueError: ``n_step`` < 1, ``gamma`` outside [0, 1], or a missing field.
    """
    _check_transition_args(list(steps), n_step, gamma, extra_keys)
    reward = tf.convert_to_tensor(steps[rlds_types.REWARD])
    lengths = tf.shape(reward, out_type=tf.int64)[:1]
    discount = steps.get(rlds_types.DISCOUNT)
    if discount is None:  # no discount field: 1 (0 after a terminal step, below)
        discount = tf.ones(
            tf.shape(reward)[:1], reward.dtype if reward.dtype.is_floating else tf.float32
        )
    found = transition_indices(
        lengths, reward, discount, steps[rlds_types.IS_TERMINAL], n_step, gamma
    )

    def at(field: Any, index: tf.Tensor) -> Any:
        return tf.nest.map_structure(lambda x: tf.gather(tf.convert_to_tensor(x), index), field)

    transitions = {
        rlds_types.OBSERVATION: at(steps[rlds_types.OBSERVATION], found["source"]),
        rlds_types.ACTION: at(steps[rlds_types.ACTION], found["source"]),
        rlds_types.REWARD: found[rlds_types.REWARD],
        rlds_types.DISCOUNT: found[rlds_types.DISCOUNT],
        "next_observation": at(steps[rlds_types.OBSERVATION], found["next"]),
    }
    transitions.update({key: at(steps[key], found["source"]) for key in extra_keys})
    return transitions


def _ceil_div(a: tf.Tensor, b: int) -> tf.Tensor:
    return (a + b - 1) // b


def window_indices(
    lengths: tf.Tensor,
    size: int,
    shift: int = 1,
    pad: bool = True,
    shuffle_seed: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """Windows of several episodes whose steps are concatenated, as indices.

    Returns ``index`` [W, size] (the step at each window position; padding repeats the
    episode's last step) and ``mask`` [W, size] (True on real steps), for windows laid out
    as in :func:`episode_windows`, episode after episode — or, with ``shuffle_seed`` (a
    shape-[2] integer tensor), in a random order.
    """
    check_positive("size", size)
    check_positive("shift", shift)
    lengths = tf.cast(tf.convert_to_tensor(lengths), tf.int64)
    if pad:
        counts = tf.minimum(
            _ceil_div(lengths, shift), 1 + _ceil_div(tf.maximum(lengths - size, 0), shift)
        )
    else:
        counts = tf.maximum((lengths - size) // shift + 1, 0)
    window = tf.range(tf.reduce_sum(counts))
    if shuffle_seed is not None:
        window = tf.random.experimental.stateless_shuffle(window, seed=shuffle_seed)
    segment = tf.searchsorted(tf.cumsum(counts), window, side="right")
    local = window - tf.gather(tf.cumsum(counts) - counts, segment)
    positions = local[:, None] * shift + tf.range(size, dtype=tf.int64)[None, :]
    length = tf.gather(lengths, segment)[:, None]
    start = tf.gather(tf.cumsum(lengths) - lengths, segment)[:, None]
    return {
        "index": start + tf.minimum(positions, tf.maximum(length - 1, 0)),
        MASK: positions < length,
    }


def episode_windows(
    steps: Mapping[str, Any], size: int, shift: int = 1, pad: bool = True
) -> dict[str, Any]:
    """Returns the windows of ``size`` consecutive steps of one episode, for sequence models.

    Every field gets leading axes [num_windows, size]; ``mask`` [num_windows, size] is True
    on real steps and False on padding. Windows start at steps 0, ``shift``, 2·``shift``, ...
    and include the last (``is_last``) step like any other, so models can read ``is_last``
    and the final observation. With ``pad`` windows continue until one reaches the last step
    and those that run past it are zero-padded (an episode shorter than ``size`` gives one
    padded window; an empty one none); without ``pad`` only complete windows are returned.

    Raises:
      ValueError: ``size`` or ``shift`` < 1, or ``steps`` already has a ``mask`` field.
    """
    check_positive("size", size)
    check_positive("shift", shift)
    if MASK in steps:
        raise ValueError(f"steps already have a {MASK!r} field; episode_windows adds its own")
    steps = tf.nest.map_structure(tf.convert_to_tensor, dict(steps))
    leaves = tf.nest.flatten(steps)
    if not leaves:
        raise ValueError("episode_windows needs at least one step field")
    found = window_indices(tf.shape(leaves[0], out_type=tf.int64)[:1], size, shift, pad)
    mask = found[MASK]

    def window(x: tf.Tensor) -> tf.Tensor:
        values = tf.gather(x, found["index"])
        valid = tf.reshape(
            mask, tf.concat([tf.shape(mask), tf.ones([x.shape.rank - 1], tf.int32)], 0)
        )
        return tf.where(valid, values, tf.zeros_like(values))

    windows = tf.nest.map_structure(window, steps)
    windows[MASK] = mask
    return windows


def steps_to_batch(steps: tf.data.Dataset) -> dict[str, Any]:
    """Returns all steps of a (nested) steps dataset as one batch, time axis first.

    The input of :func:`episode_transitions` and :func:`episode_windows`; cheap inside
    ``Dataset.map`` functions. An empty dataset gives fields with a leading axis of 0.
    """
    everything = steps.batch(nested_ops.MAX_BATCH)
    return nested_ops.first_or(everything, nested_ops.empty_batch(steps.element_spec))


def _steps_spec(episodes: tf.data.Dataset) -> Mapping[str, Any]:
    require_dataset(episodes)
    element_spec = episodes.element_spec
    check_keys([rlds_types.STEPS], element_spec, where="episode")
    return element_spec[rlds_types.STEPS].element_spec


def transitions(
    episodes: tf.data.Dataset,
    n_step: int = 1,
    gamma: float = 1.0,
    extra_keys: Sequence[str] = (),
) -> tf.data.Dataset:
    """Returns a dataset of single transitions from a dataset of RLDS episodes.

    Each episode is turned into transitions whole with :func:`episode_transitions` (see there
    for the fields and n-step semantics); no transition crosses an episode boundary, and
    the order of episodes and steps is kept.
    """
    _check_transition_args(list(_steps_spec(episodes)), n_step, gamma, extra_keys)

    def to_transitions(episode: Mapping[str, Any]) -> dict[str, Any]:
        steps = steps_to_batch(episode[rlds_types.STEPS])
        return episode_transitions(steps, n_step=n_step, gamma=gamma, extra_keys=extra_keys)

    return episodes.map(to_transitions, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def windows(
    episodes: tf.data.Dataset, size: int, shift: int = 1, pad: bool = True
) -> tf.data.Dataset:
    """Returns a dataset of step windows (each with a ``mask``) from RLDS episodes.

    See :func:`episode_windows`; windows never span two episodes.
    """
    check_positive("size", size)
    check_positive("shift", shift)
    if MASK in _steps_spec(episodes):
        raise ValueError(f"steps already have a {MASK!r} field; windows adds its own")

    def to_windows(episode: Mapping[str, Any]) -> dict[str, Any]:
        steps = steps_to_batch(episode[rlds_types.STEPS])
        return episode_windows(steps, size=size, shift=shift, pad=pad)

    return episodes.map(to_windows, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
