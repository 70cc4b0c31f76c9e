"""Opened datasets and decoded episodes of indexed datasets, read through the core.

A read that fails because the directory vanished or its files are damaged raises
:class:`DatasetUnavailable` naming the dataset and the file; the API answers 409 for that
dataset only and records its state in the index.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlds_hub.server.core.cache import LRUCache
from rlds_hub.server.reading.records import RecordLocator
from rlds_hub.storage import DatasetError, RLDSDataset, open_dataset


class DatasetUnavailable(Exception):
    """An indexed dataset that cannot be read now (``code``: dataset_missing or
    dataset_corrupt)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _nbytes(arrays: dict[str, np.ndarray]) -> int:
    total = 0
    for value in arrays.values():
        total += value.nbytes if value.dtype != object else value.size * 64
    return total


class EpisodeReader:
    """Keeps opened datasets and recently decoded episodes (per process)."""

    def __init__(self, dataset_cache: int, episode_cache_bytes: int):
        self.datasets: LRUCache[RLDSDataset] = LRUCache(dataset_cache)
        self.episodes: LRUCache[dict[str, np.ndarray]] = LRUCache(episode_cache_bytes, _nbytes)
        self.records = RecordLocator()

    def dataset(self, row: Any) -> RLDSDataset:
        """The dataset of an index row, opened once per state of the row (its token)."""
        return self.datasets.get_or_load((row.path, row.token), lambda: self._open(row))

    def _open(self, row: Any) -> RLDSDataset:
        remote = "://" in row.path  # an s3:// gs:// https:// root's dataset
        if not remote and not os.path.isdir(row.path):
            raise DatasetUnavailable("dataset_missing", _missing(row))
        try:
            # indexed paths are resolved: a directory swapped for a link to elsewhere is refused
            return open_dataset(row.path, within=None if remote else row.path)
        except DatasetError as e:
            raise DatasetUnavailable("dataset_corrupt", f"dataset {row.name!r}: {e}") from e

    def episode(
        self, row: Any, split: str, index: int, keys: Sequence[str] | None
    ) -> dict[str, np.ndarray]:
        """Flat arrays (``steps/...`` ``[T, ...]``, episode metadata) of one episode, decoding
        only ``keys`` (flattened keys or prefixes; None: every leaf)."""
        key = (row.path, row.token, split, index, None if keys is None else tuple(keys))
        return self.episodes.get_or_load(key, lambda: self._read(row, split, index, keys))

    def _read(
        self, row: Any, split: str, index: int, keys: Sequence[str] | None
    ) -> dict[str, np.ndarray]:
        dataset = self.dataset(row)
        try:
            return self.records.read(dataset, split, index, keys)
        except (DatasetError, OSError) as e:
            if not os.path.isdir(row.path):
                raise DatasetUnavailable("dataset_missing", _missing(row)) from e
            raise DatasetUnavailable(
                "dataset_corrupt",
                f"dataset {row.name!r}: episode {index} of split {split!r} cannot be read: {e}."
                " Run `rlds-hub validate` on it, then re-index",
            ) from e

    def forget(self, path: str) -> None:
        """Drops everything cached for the dataset at ``path``."""
        self.datasets.discard(lambda key: key[0] == path)
        self.episodes.discard(lambda key: key[0] == path)


def _missing(row: Any) -> str:
    return (
        f"dataset {row.name!r}: its directory {row.path} no longer exists; restore it, or "
        "re-scan to drop it from the index"
    )
