"""Datasets on disk, without TensorFlow: the directory layout, shard files, opening a
dataset, the one reader of a selection of episodes, the episode table and layout, episode
selection, the crash-safe writer and repairs.

The usual entry points::

    from rlds_hub.storage import open_dataset, select, iter_episodes, iter_batches
    dataset = open_dataset("data/cartpole")
    for episode in iter_episodes(select(dataset, "train[:10]")):
        episode["steps"]["observation"]   # NumPy arrays [T, ...]
"""

from rlds_hub.storage.dataset import RLDSDataset, SplitInfo, open_dataset
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.episodes import (
    LAYOUT_OXE,
    LAYOUT_RLDS,
    LAYOUTS,
    dataset_layout,
    episode_table,
)
from rlds_hub.storage.filters import FILTERS, RowFilter
from rlds_hub.storage.names import as_dataset
from rlds_hub.storage.query import select, select_episodes, select_splits
from rlds_hub.storage.reader import (
    DecodedBatch,
    EpisodeDecodeError,
    EpisodeRecord,
    iter_batches,
    iter_episodes,
    iter_records,
    read_episode,
    read_record,
)
from rlds_hub.storage.selection import EpisodeSpec, Selection, episode_indices
from rlds_hub.storage.shards import ShardError

__all__ = [
    "FILTERS",
    "LAYOUTS",
    "LAYOUT_OXE",
    "LAYOUT_RLDS",
    "DatasetError",
    "DecodedBatch",
    "EpisodeDecodeError",
    "EpisodeRecord",
    "EpisodeSpec",
    "RLDSDataset",
    "RowFilter",
    "Selection",
    "ShardError",
    "SplitInfo",
    "as_dataset",
    "dataset_layout",
    "episode_indices",
    "episode_table",
    "iter_batches",
    "iter_episodes",
    "iter_records",
    "open_dataset",
    "read_episode",
    "read_record",
    "select",
    "select_episodes",
    "select_splits",
]
