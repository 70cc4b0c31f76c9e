"""Finding a dataset, selecting its episodes, and loading them as a tf.data dataset.

``load`` returns RLDS episodes exactly as plain TFDS does (steps as a nested dataset), read
through TFDS itself; a :class:`Selection` names which episodes of which split, and is what
the fast batch loaders read.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from rlds_hub.dataset import RLDSDataset, open_dataset
from rlds_hub.storage.layout import DatasetError

DATA_DIR_ENV = "RLDS_HUB_DATA_DIR"
DEFAULT_DATA_DIR = "~/rlds_hub_data"

EpisodeSpec = slice | range | Sequence[int] | np.ndarray | None
Where = Callable[[dict[str, Any]], bool] | None


def data_dirs() -> list[str]:
    """Where bare dataset names are looked up: $RLDS_HUB_DATA_DIR (or ~/rlds_hub_data), then
    the TFDS data directory."""
    dirs = [os.path.expanduser(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR))]
    dirs.append(os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")))
    return dirs


def resolve(path_or_name: str | os.PathLike) -> str:
    """The dataset directory for a path, or for a bare name found in :func:`data_dirs`.

    A name may carry a version (``name/1.0.0``); without one, the newest version directory
    is used when the name's directory holds versions (the TFDS layout).
    """
    text = os.fspath(path_or_name)
    if "://" in text or os.path.isabs(text) or tf.io.gfile.exists(text):
        return text
    searched = []
    for root in data_dirs():
        candidate = os.path.join(root, text)
        searched.append(candidate)
        if tf.io.gfile.exists(os.path.join(candidate, "dataset_info.json")):
            return candidate
        if tf.io.gfile.isdir(candidate):
            versions = sorted(
                (v for v in tf.io.gfile.listdir(candidate)
                 if tf.io.gfile.exists(os.path.join(candidate, v.rstrip("/"), "dataset_info.json"))),
                key=_version_key,
            )
            if versions:
                return os.path.join(candidate, versions[-1].rstrip("/"))
    raise DatasetError(
        f"no dataset {text!r}: not a path, and not found in {', '.join(searched)} "
        f"(set ${DATA_DIR_ENV} or pass the dataset directory)"
    )


def _version_key(version: str) -> tuple:
    parts = version.rstrip("/").split(".")
    return tuple(int(p) if p.isdigit() else -1 for p in parts)


def as_dataset(source: str | os.PathLike | RLDSDataset) -> RLDSDataset:
    """``source`` itself if already opened, else the dataset at that path or name.

    Raises:
      DatasetError: not a dataset directory.
    """
    return source if isinstance(source, RLDSDataset) else open_dataset(resolve(source))


def episode_indices(episodes: EpisodeSpec, num_episodes: int) -> np.ndarray | None:
    """Sorted, distinct episode indices for a range / slice / sequence; None for all.

    Raises:
      DatasetError: an index outside ``[0, num_episodes)``.
      TypeError: indices that are not integers.
    """
    if episodes is None:
        return None
    if isinstance(episodes, slice):
        return np.arange(num_episodes, dtype=np.int64)[episodes]
    if isinstance(episodes, int | np.integer):
        episodes = [episodes]
    values = np.asarray(list(episodes) if not isinstance(episodes, np.ndarray) else episodes)
    if values.size and values.dtype.kind not in "iu":
        raise TypeError(f"episode indices must be integers, got {values.dtype} values")
    indices = np.unique(values.astype(np.int64).ravel())
    bad = indices[(indices < 0) | (indices >= num_episodes)]
    if bad.size:
        raise DatasetError(
            f"episode indices {bad[:5].tolist()} are out of range "
            f"(the split has {num_episodes} episodes)"
        )
    return indices


@dataclasses.dataclass(frozen=True)
class ShardRead:
    """Read ``take`` episodes of one shard file, after skipping ``skip``."""

    path: str
    skip: int
    take: int
    shard_episodes: int


@dataclasses.dataclass(frozen=True)
class Selection:
    """Some episodes (``indices``, in split order; None: all) of one split of a dataset."""

    dataset: RLDSDataset
    split: str
    indices: tuple[int, ...] | None = None

    @property
    def num_episodes(self) -> int:
        if self.indices is None:
            return self.dataset.split(self.split).num_episodes
        return len(self.indices)

    def runs(self) -> list[tuple[int, int]]:
        """The selection as sorted, merged ``[start, stop)`` ranges of episode indices."""
        total = self.dataset.split(self.split).num_episodes
        if self.indices is None:
            return [(0, total)] if total else []
        runs: list[tuple[int, int]] = []
        for index in self.indices:
            if runs and runs[-1][1] == index:
                runs[-1] = (runs[-1][0], index + 1)
            else:
                runs.append((index, index + 1))
        return runs

    def shard_reads(self) -> list[ShardRead]:
        """Which part of which shard file to read, shard by shard, in split order."""
        info = self.dataset.split(self.split)
        reads = []
        start = 0
        runs = self.runs()
        for path, length in zip(info.shard_paths, info.shard_lengths, strict=True):
            end = start + length
            for lo, hi in runs:
                lo, hi = max(lo, start), min(hi, end)
                if lo < hi:
                    reads.append(ShardRead(path, lo - start, hi - lo, length))
            start = end
        return reads

    def read_instruction(self) -> str | tfds.core.ReadInstruction:
        """The selection as a TFDS split (slices joined with ``+``)."""
        if self.indices is None:
            return self.split
        runs = self.runs()
        if not runs:
            raise DatasetError(f"no episode of {self.split!r} was selected")
        instructions = [
            tfds.core.ReadInstruction(self.split, from_=lo, to=hi, unit="abs") for lo, hi in runs
        ]
        total = instructions[0]
        for instruction in instructions[1:]:
            total = total + instruction
        return total


def select(
    source: str | os.PathLike | RLDSDataset,
    split: str = "train",
    *,
    episodes: EpisodeSpec = None,
    where: Where = None,
    **filters: Any,
) -> Selection:
    """Selects episodes of ``split``: an index range/slice/sequence (``episodes``), a
    predicate on each episode's row of :func:`rlds_hub.data.episode_table` (``where``), and
    the filters of :func:`rlds_hub.data.select_episodes` (``min_length``, ``max_return``,
    ...). Without any of them, every episode."""
    dataset = as_dataset(source)
    if "[" in split:
        raise DatasetError(
            f"split slices like {split!r} are for load(); select with episodes=slice(...)"
        )
    total = dataset.split(split).num_episodes
    if where is None and not filters:
        found = episode_indices(episodes, total)
        indices = None if found is None else tuple(int(i) for i in found)
    else:
        from rlds_hub.data.episodes import select_episodes

        indices = tuple(
            select_episodes(dataset, split, where=where, episodes=episodes, **filters)
        )
    return Selection(dataset, split, indices)


def load(
    path_or_name: str | os.PathLike | RLDSDataset,
    split: str = "train",
    *,
    episodes: EpisodeSpec = None,
    where: Where = None,
    shuffle_files: bool = False,
    read_config: tfds.ReadConfig | None = None,
    decoders: Any = None,
    **filters: Any,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of the RLDS episodes of a dataset, as plain TFDS returns them.

    Args:
      path_or_name: a dataset directory (local or any ``tf.io.gfile`` path), or a name
        looked up in :func:`data_dirs`.
      split: a split, or TFDS split syntax (``"train[:10%]"``, ``"train[5:20]+test"``).
      episodes / where / filters: episode selection, see :func:`select` (not combinable
        with split slices).
      shuffle_files, read_config, decoders: passed to TFDS ``as_dataset``.
    """
    dataset = as_dataset(path_or_name)
    if episodes is None and where is None and not filters:
        instruction: Any = split
        names = {part.split("[")[0] for part in split.split("+")}
        for name in names:
            dataset.split(name)  # a clear error for an unknown split
    else:
        instruction = select(dataset, split, episodes=episodes, where=where, **filters)
        instruction = instruction.read_instruction()
    if dataset.file_format != "tfrecord":
        raise DatasetError(
            f"{dataset.path} stores {dataset.file_format} shards, which TFDS reads only as a "
            "random-access data source: use tfds.builder_from_directory(path)."
            "as_data_source(split), or the batch loaders in rlds_hub.data"
        )
    return dataset.builder.as_dataset(
        split=instruction, shuffle_files=shuffle_files, read_config=read_config,
        decoders=decoders,
    )
