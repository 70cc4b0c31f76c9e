"""Synthetic RLDS episodes for tests of code built on :mod:`rlds_hub.transforms`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from rlds_hub import rlds_types


def synthetic_steps(
    num_transitions: int,
    *,
    terminal: bool = True,
    seed: int = 0,
    nested: bool = True,
    reward_dtype: Any = np.float32,
    discounts: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Returns the T+1 steps of one episode as a dict of numpy arrays (time axis first).

    T = ``num_transitions``. Follows the RLDS contract: the last step is ``is_last`` with
    zero-filled action, reward and discount; when ``terminal`` the last step is terminal and
    the discount of the last transition is 0. ``nested`` observations are a dict with an
    image and actions a tuple; otherwise both are float vectors. ``discounts`` (length T)
    overrides the per-transition discounts (before the terminal zero).
    """
    rng = np.random.default_rng(seed)
    length = num_transitions + 1
    live = np.arange(length) < num_transitions  # steps whose action/reward are meaningful
    if nested:
        observation: Any = {
            "position": rng.normal(size=(length, 3)).astype(np.float32),
            "pixels": rng.integers(0, 256, size=(length, 2, 2, 1), dtype=np.uint8),
        }
        action: Any = (
            np.where(live[:, None], rng.normal(size=(length, 2)), 0).astype(np.float32),
            np.where(live, rng.integers(0, 5, size=length), 0).astype(np.int32),
        )
    else:
        observation = rng.normal(size=(length, 3)).astype(np.float32)
        action = np.where(live[:, None], rng.normal(size=(length, 2)), 0).astype(np.float32)
    reward = np.where(live, rng.normal(size=length), 0).astype(reward_dtype)
    if discounts is None:
        discount = np.ones(length)
    else:
        discount = np.concatenate([np.asarray(discounts, np.float64), [0.0]])
    if terminal and num_transitions > 0:
        discount[num_transitions - 1] = 0.0
    discount = np.where(live, discount, 0).astype(reward_dtype)
    is_last = ~live
    return {
        rlds_types.OBSERVATION: observation,
        rlds_types.ACTION: action,
        rlds_types.REWARD: reward,
        rlds_types.DISCOUNT: discount,
        rlds_types.IS_FIRST: np.arange(length) == 0,
        rlds_types.IS_LAST: is_last,
        rlds_types.IS_TERMINAL: is_last & terminal,
        "step_id": np.arange(length, dtype=np.int64),
    }


def episodes_dataset(
    episodes: Sequence[Mapping[str, Any]],
    *,
    metadata: Mapping[str, Any] | None = None,
    known_cardinality: bool = True,
) -> tf.data.Dataset:
    """Returns a dataset of RLDS episodes whose ``steps`` are nested datasets.

    ``episodes`` holds the step arrays of each episode (as from :func:`synthetic_steps`,
    all with the same structure); ``metadata`` maps episode-level field names to arrays with
    one entry per episode (``episode_index`` is always added). With ``known_cardinality``
    False the nested datasets report an unknown cardinality, as filtered ones do.
    """
    lengths = [len(tf.nest.flatten(steps)[0]) for steps in episodes]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    all_steps = tf.nest.map_structure(lambda *parts: tf.constant(np.concatenate(parts)), *episodes)
    per_episode = {"start": starts, "length": np.asarray(lengths, np.int64)}
    episode_fields = {"episode_index": np.arange(len(episodes), dtype=np.int64)}
    episode_fields.update(metadata or {})

    def build(index: tf.Tensor, bounds: dict[str, tf.Tensor], fields: dict[str, Any]) -> Any:
        end = bounds["start"] + bounds["length"]
        steps = tf.data.Dataset.from_tensor_slices(
            tf.nest.map_structure(lambda x: x[bounds["start"] : end], all_steps)
        )
        if not known_cardinality:
            steps = steps.filter(lambda _: True)
        return rlds_types.build_episode(steps, metadata=fields)

    return tf.data.Dataset.zip(
        tf.data.Dataset.range(len(episodes)),
        tf.data.Dataset.from_tensor_slices(per_episode),
        tf.data.Dataset.from_tensor_slices(episode_fields),
    ).map(build)


def to_numpy(dataset: tf.data.Dataset) -> list[Any]:
    """Returns the elements of ``dataset`` as numpy nests (nested datasets as lists)."""

    def convert(value: Any) -> Any:
        if isinstance(value, tf.data.Dataset):
            return to_numpy(value)
        return value.numpy() if hasattr(value, "numpy") else value

    return [tf.nest.map_structure(convert, element) for element in dataset]
