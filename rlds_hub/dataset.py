"""Opening an RLDS dataset directory for reading: the one place its metadata is read.

``open_dataset(path)`` goes through ``tfds.builder_from_directory`` (so anything TFDS can
read, rlds_hub reads the same way) and adds what rlds_hub keeps beside it: the dataset-level
metadata (``metadata.json``) and the episode index (``episodes.jsonl``). The CLI, the
loaders, the pipelines and the server all start here.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Iterator
from typing import Any

import tensorflow as tf
import tensorflow_datasets as tfds

from rlds_hub import spec as rlds
from rlds_hub.storage import layout
from rlds_hub.storage.episode_index import read_episode_index
from rlds_hub.storage.layout import DatasetError


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    """One split: its shards (path and episode count, in reading order) and sizes."""

    name: str
    shard_paths: tuple[str, ...]
    shard_lengths: tuple[int, ...]
    num_bytes: int

    @property
    def num_episodes(self) -> int:
        return sum(self.shard_lengths)

    @property
    def nonempty_shards(self) -> list[tuple[str, int]]:
        """(path, episodes) of the shards a reader opens (0-length shards are skipped)."""
        return [(p, n) for p, n in zip(self.shard_paths, self.shard_lengths, strict=True) if n]


@dataclasses.dataclass
class RLDSDataset:
    """A readable RLDS dataset directory."""

    path: str
    builder: tfds.core.DatasetBuilder
    metadata: dict[str, Any]
    splits: dict[str, SplitInfo]

    @property
    def name(self) -> str:
        return self.builder.info.name

    @property
    def version(self) -> str:
        return str(self.builder.info.version)

    @property
    def features(self) -> tfds.features.FeaturesDict:
        return self.builder.info.features

    @property
    def file_format(self) -> str:
        return self.builder.info.file_format.value

    @property
    def step_features(self) -> tfds.features.FeaturesDict:
        return self.features[rlds.STEPS].feature

    def split(self, name: str) -> SplitInfo:
        if name not in self.splits:
            raise DatasetError(
                f"{self.path} has no split {name!r}; its splits are {sorted(self.splits)}"
            )
        return self.splits[name]

    @functools.cached_property
    def episode_index(self) -> list[dict[str, Any]] | None:
        """Rows of ``episodes.jsonl`` for the published episodes, or None if absent."""
        from rlds_hub.storage.shards import read_bytes

        path = os.path.join(self.path, layout.EPISODE_INDEX)
        if not tf.io.gfile.exists(path):
            return None
        counts = {name: s.num_episodes for name, s in self.splits.items()}
        return read_episode_index(read_bytes(path), counts)

    def episode_rows(self, split: str) -> list[dict[str, Any]] | None:
        """Index rows of ``split`` in episode order; None unless every episode has a row."""
        rows = self.episode_index
        if rows is None:
            return None
        selected = [r for r in rows if r.get("split") == split]
        return selected if len(selected) == self.split(split).num_episodes else None

    def iter_records(self, split: str) -> Iterator[tuple[str, int, bytes]]:
        """Yields ``(shard path, record index, serialized episode)`` in reading order."""
        from rlds_hub.storage import shards

        for shard_path, _ in self.split(split).nonempty_shards:
            for i, record in enumerate(shards.read_records(shard_path, self.file_format)):
                yield shard_path, i, record


def open_dataset(path: str | os.PathLike) -> RLDSDataset:
    """Opens the RLDS dataset whose ``dataset_info.json`` is in ``path``.

    Raises:
      DatasetError: if ``path`` does not exist, is not a TFDS dataset directory, or its
        features are not RLDS episodes (no ``steps`` dataset feature).
    """
    path_str = os.fspath(path)
    if not tf.io.gfile.exists(path_str):
        raise DatasetError(f"{path_str} does not exist")
    if not tf.io.gfile.exists(os.path.join(path_str, layout.DATASET_INFO)):
        raise DatasetError(_not_a_dataset_message(path_str))
    try:
        builder = tfds.builder_from_directory(path_str)
    except Exception as e:  # TFDS raises many types for broken metadata
        raise DatasetError(
            f"{path_str} holds a dataset_info.json that TFDS cannot load: {e}"
        ) from e
    features = builder.info.features
    steps = None
    if isinstance(features, tfds.features.FeaturesDict) and rlds.STEPS in features:
        steps = features[rlds.STEPS]
    if not isinstance(steps, tfds.features.Dataset):
        raise DatasetError(
            f"{path_str} is a TFDS dataset but not RLDS: its features have no "
            f"'{rlds.STEPS}' dataset of steps"
        )
    splits = {}
    for name, info in builder.info.splits.items():
        splits[name] = SplitInfo(
            name=name,
            shard_paths=tuple(os.fspath(p) for p in info.filepaths),
            shard_lengths=tuple(int(n) for n in info.shard_lengths),
            num_bytes=int(info.num_bytes),
        )
    return RLDSDataset(path_str, builder, _read_metadata(path_str), splits)


def _read_metadata(path: str) -> dict[str, Any]:
    file = os.path.join(path, layout.METADATA)
    if not tf.io.gfile.exists(file):
        return {}
    try:
        with tf.io.gfile.GFile(file) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{file} is not valid JSON ({e})") from e


def _not_a_dataset_message(path: str) -> str:
    found = []
    for pattern in ("*/dataset_info.json", "*/*/dataset_info.json"):
        found += tf.io.gfile.glob(os.path.join(path, pattern))
    message = f"{path} is not an RLDS dataset directory (it has no {layout.DATASET_INFO})"
    if found:
        dirs = sorted(os.path.dirname(f) for f in found)[:5]
        message += "; datasets inside it: " + ", ".join(dirs)
    else:
        message += "; pass the directory that holds dataset_info.json"
    return message
