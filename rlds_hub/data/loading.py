"""Finding a dataset by path or name, and loading its episodes as a ``tf.data`` dataset.

``load`` returns RLDS episodes exactly as plain TFDS decodes them (steps as a nested
``tf.data.Dataset``, every feature decoded by TFDS's own feature code), with rlds_hub's
episode selection: TFDS split slices, indices, predicates and filters, combinable. The
records are read by rlds_hub's reader, so episodes come in split order (episode ``i`` of the
result is row ``i`` of the episode table), ArrayRecord datasets load too, and a corrupt
shard is reported with its file and byte offset.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from rlds_hub.extras import require
from rlds_hub.storage.dataset import RLDSDataset
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.filters import Where, check_filters

# Names are resolved in storage (TFDS's <name>/<version> and <name>/<config>/<version>).
from rlds_hub.storage.names import DATA_DIR_ENV as DATA_DIR_ENV
from rlds_hub.storage.names import DEFAULT_DATA_DIR as DEFAULT_DATA_DIR
from rlds_hub.storage.names import as_dataset
from rlds_hub.storage.names import data_dirs as data_dirs
from rlds_hub.storage.query import select_splits
from rlds_hub.storage.reader import iter_records
from rlds_hub.storage.selection import EpisodeSpec


def load(
    path_or_name: str | os.PathLike | RLDSDataset,
    split: str = "train",
    *,
    episodes: EpisodeSpec = None,
    where: Where = None,
    shuffle_files: bool = False,
    seed: int = 0,
    decoders: Any = None,
    **filters: Any,
) -> Any:
    """A ``tf.data.Dataset`` of the RLDS episodes of a dataset, as plain TFDS decodes them.

    Args:
      path_or_name: a dataset directory (local or remote), or a name looked up in
        :func:`data_dirs`.
      split: a split, or TFDS split syntax (``"train[:80%]"``, ``"train[5:20]+test"``).
      episodes / where / filters: which episodes, combinable with a split slice: indices
        (``episodes``, not with a slice), a predicate on each episode's row of
        :func:`rlds_hub.data.episode_table` (``where``), and ``min_length``,
        ``max_length``, ``min_return``, ``max_return``, ``terminated``.
      shuffle_files: read the shard files in an order shuffled with ``seed``.
      decoders: TFDS decoders (e.g. ``{"steps": {"observation": {"image":
        tfds.decode.SkipDecoding()}}}``).

    Raises:
      DatasetError: not a dataset, an unknown split, or no episode selected.
      TypeError: an unknown filter (the valid ones are named).
    """
    check_filters(filters, "load")
    dataset = as_dataset(path_or_name, "load()")
    selections = select_splits(dataset, split, episodes=episodes, where=where, **filters)
    total = sum(s.num_episodes for s in selections)
    if total == 0 and (episodes is not None or where is not None or filters):
        raise DatasetError(
            f"no episode of {split!r} passes the selection "
            f"({_describe_selection(episodes, where, filters)})"
        )
    tf = require("tensorflow", "tf", "rlds_hub.load (tf.data)")

    _quiet_tfds_dtype_warning()
    features = dataset.features
    rng = np.random.default_rng(seed)

    def records():
        for selection in selections:
            order = None
            if shuffle_files:
                order = rng.permutation(len(selection.shard_reads())).tolist()
            for record in iter_records(selection, shard_order=order):
                yield bytes(record.data)

    serialized = tf.data.Dataset.from_generator(
        records, output_signature=tf.TensorSpec((), tf.string)
    )
    serialized = serialized.apply(tf.data.experimental.assert_cardinality(total))
    return serialized.map(
        lambda x: features.deserialize_example(x, decoders=decoders),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


class _DropDtypeDeprecation(logging.Filter):
    """TFDS's own ``Tensor.decode_example`` reads its deprecated ``FeatureConnector.dtype``
    for bytes-encoded tensors (float64 here) and logs a deprecation warning about itself on
    every trace; the message concerns TFDS's code, not the user's, so ``load`` drops it.
    (Plain TFDS still logs it: that is TFDS 4.9.10's own call, tensor_feature.py.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        return "FeatureConnector.dtype` is deprecated" not in record.getMessage()


def _quiet_tfds_dtype_warning() -> None:
    logger = logging.getLogger("absl")
    if not any(isinstance(f, _DropDtypeDeprecation) for f in logger.filters):
        logger.addFilter(_DropDtypeDeprecation())


def _describe_selection(episodes: Any, where: Any, filters: dict[str, Any]) -> str:
    parts = [f"{k}={v!r}" for k, v in filters.items()]
    if episodes is not None:
        parts.append(f"episodes={episodes!r}")
    if where is not None:
        parts.append("where=...")
    return ", ".join(parts)
