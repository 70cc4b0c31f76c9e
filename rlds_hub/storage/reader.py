"""The one reader of a dataset selection: serialized episodes, decoded batches, or episodes.

Everything that reads episodes goes through here — the batch loaders, the episode table,
statistics, validation, ``info``, the Beam source, the service and the learners — and
decodes with the one NumPy decoder (:mod:`rlds_hub.format.decode`). No TensorFlow.

- :func:`iter_records`: ``(episode index, shard, position, bytes)`` in split order (or a
  shuffled shard order), every TFRecord CRC-checked.
- :func:`iter_batches`: :class:`DecodedBatch` es of episodes, decoding only the leaves
  asked for, in bounded memory (one shard file plus one batch).
- :func:`iter_episodes` / :func:`read_episode`: nested NumPy episodes
  (``{"steps": {"observation": [T, ...], ...}, <metadata>...}``).

Errors name the shard file and, for a record that does not decode, the episode.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from rlds_hub import rlds_types as rlds
from rlds_hub.format.decode import NUM_STEPS, EpisodeDecoder, ParseError
from rlds_hub.format.images import ImageDecodeError
from rlds_hub.format.plan import Plan, unflatten
from rlds_hub.storage import remote_shards, shards
from rlds_hub.storage.dataset import RLDSDataset
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.selection import Selection, ShardRead

# A batch of episodes is decoded at once when it reaches either bound.
DEFAULT_BATCH_EPISODES = 256
DEFAULT_BATCH_BYTES = 64 * 2**20
INDEX = "__index__"


class EpisodeDecodeError(DatasetError):
    """An episode whose record does not decode with the dataset's features."""


@dataclasses.dataclass(frozen=True)
class EpisodeRecord:
    """One serialized episode and where it was read from."""

    index: int  # in the split
    shard: str  # the shard file's path
    position: int  # record number in the shard
    data: bytes | memoryview


@dataclasses.dataclass(frozen=True)
class DecodedBatch:
    """Some episodes of a selection, decoded to NumPy.

    ``arrays`` maps flattened keys ("steps/reward", "episode_metadata/task") to arrays:
    step keys over all steps of the batch concatenated, episode keys ``[B, ...]``;
    ``num_steps`` is ``[B]``; ``episodes`` the episodes' indices in the split.
    """

    episodes: np.ndarray
    num_steps: np.ndarray
    arrays: dict[str, np.ndarray]

    @functools.cached_property
    def starts(self) -> np.ndarray:
        """[B] index of each episode's first step in the step arrays."""
        return np.cumsum(self.num_steps) - self.num_steps

    @functools.cached_property
    def last_step(self) -> np.ndarray:
        """[sum num_steps] bool: True on the last step of each (non-empty) episode."""
        mask = np.zeros(int(self.num_steps.sum()), dtype=bool)
        ends = np.cumsum(self.num_steps)
        mask[ends[self.num_steps > 0] - 1] = True
        return mask

    @functools.cached_property
    def owner(self) -> np.ndarray:
        """[sum num_steps] the batch position of the episode each step belongs to."""
        return np.repeat(np.arange(len(self.num_steps)), self.num_steps)

    def episode(self, i: int) -> dict[str, Any]:
        """Episode ``i`` of the batch as a nested dict (arrays are views)."""
        start, end = int(self.starts[i]), int(self.starts[i] + self.num_steps[i])
        flat = {}
        for key, values in self.arrays.items():
            flat[key] = values[start:end] if key.startswith(_STEPS) else values[i]
        episode = unflatten(flat)
        episode.setdefault(rlds.STEPS, {})
        episode[INDEX] = int(self.episodes[i])
        return episode


_STEPS = f"{rlds.STEPS}/"


def _as_selection(source: Selection | RLDSDataset, split: str | None) -> Selection:
    if isinstance(source, Selection):
        return source
    if isinstance(source, RLDSDataset):
        return Selection(source, split or "train")
    raise TypeError(f"expected a Selection or an opened RLDSDataset, got {type(source).__name__}")


def iter_records(
    source: Selection | RLDSDataset,
    split: str | None = None,
    *,
    shard_order: Sequence[int] | None = None,
) -> Iterator[EpisodeRecord]:
    """The selected episodes' serialized records, shard by shard.

    Args:
      source: a :class:`Selection`, or an opened dataset (with ``split``: all episodes).
      shard_order: a permutation of the selection's :meth:`Selection.shard_reads` to read
        them in (e.g. shuffled per epoch); default split order.

    Raises:
      ShardError: a missing, truncated or corrupt shard (file and byte offset), or a shard
        holding fewer episodes than ``dataset_info.json`` lists.
    """
    selection = _as_selection(source, split)
    reads = selection.shard_reads()
    order = range(len(reads)) if shard_order is None else shard_order
    reader = ShardReader(selection.dataset)
    reader.plan([reads[i] for i in order])
    try:
        for i in order:
            yield from reader.records(reads[i])
    finally:
        reader.plan([])


class ShardReader:
    """The records of :class:`ShardRead` s of one dataset (a TFRecord shard is read whole
    and kept for the next read of the same shard)."""

    def __init__(self, dataset: RLDSDataset):
        self._format = dataset.file_format
        self._within = dataset.real_path
        self._cached: tuple[str, list[Any]] | None = None
        self._ahead: remote_shards.Prefetch | None = None
        # the mean shard size dataset_info.json gives (0 if not), to size the prefetch
        self._shard_bytes = max(
            (s.num_bytes // max(1, len(s.shard_paths)) for s in dataset.splits.values()), default=0
        )

    def plan(self, reads: Sequence[ShardRead]) -> None:
        """The reads to come, in order: remote TFRecord shards among them are fetched ahead,
        in parallel (:class:`.remote_shards.Prefetch`); an empty list stops fetching."""
        if self._ahead is not None:
            self._ahead.close()
        remote = [r.path for r in reads if self._format == "tfrecord" and "://" in r.path]
        self._ahead = (
            remote_shards.Prefetch(remote, shard_bytes=self._shard_bytes) if remote else None
        )

    def records(self, read: ShardRead) -> list[EpisodeRecord]:
        """``read``'s records.

        Raises:
          ShardError: as :func:`iter_records`.
        """
        if self._format == "tfrecord":
            if self._cached is None or self._cached[0] != read.path:
                data = self._ahead.take(read.path) if self._ahead is not None else None
                found = shards.read_records(read.path, self._format, within=self._within, data=data)
                self._cached = (read.path, found)
                _check_count(read, len(found))
            records = self._cached[1][read.skip : read.skip + read.take]
        else:
            records = shards.read_records(
                read.path, self._format, skip=read.skip, take=read.take, within=self._within
            )
        return [
            EpisodeRecord(read.first + offset, read.path, read.skip + offset, record)
            for offset, record in enumerate(records)
        ]


def _check_count(read: ShardRead, found: int) -> None:
    if found != read.shard_episodes:
        raise shards.ShardError(
            f"{read.path} holds {found} episodes but dataset_info.json lists "
            f"{read.shard_episodes}; run `rlds-hub validate` on the dataset"
        )


def decoder_for(dataset: RLDSDataset, keys: Iterable[str] | None = None) -> EpisodeDecoder:
    """A decoder of ``keys`` (flattened keys or prefixes at "/"; default every leaf)."""
    plan = dataset.plan if keys is None else dataset.plan.restrict(keys)
    if not plan.step_leaves:
        # Lengths need one step leaf: add the cheapest.
        plan = Plan([*plan.leaves, dataset.plan.length_leaf()])
    return EpisodeDecoder(plan)


def decode_records(
    decoder: EpisodeDecoder, records: Sequence[EpisodeRecord]
) -> dict[str, np.ndarray]:
    """Decodes a batch of records; a bad one is reported with its episode and shard."""
    try:
        return decoder.decode([r.data for r in records])
    except (ParseError, ImageDecodeError):
        for record in records:  # locate the bad record
            try:
                decoder.decode([record.data])
            except (ParseError, ImageDecodeError) as e:
                raise EpisodeDecodeError(
                    f"episode {record.index} ({os.path.basename(record.shard)}, record "
                    f"{record.position}) does not decode: {_strip_batch(e)}"
                ) from None
        raise


def _strip_batch(error: Exception) -> str:
    return str(error).removeprefix("episode 0 of the batch: ")


def iter_batches(
    source: Selection | RLDSDataset,
    split: str | None = None,
    *,
    keys: Iterable[str] | None = None,
    batch_episodes: int = DEFAULT_BATCH_EPISODES,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> Iterator[DecodedBatch]:
    """Decoded batches of the selected episodes, in split order.

    Args:
      source: a :class:`Selection`, or an opened dataset (with ``split``).
      keys: flattened keys to decode ("steps/reward", "steps/observation" for all its
        leaves, "episode_metadata"); default every leaf.
      batch_episodes / batch_bytes: a batch is cut when it reaches either.
    """
    if batch_episodes < 1:
        raise ValueError(f"batch_episodes must be at least 1, got {batch_episodes}")
    selection = _as_selection(source, split)
    if keys is not None:
        keys = list(keys)
        unknown = [k for k in keys if not selection.dataset.plan.restrict([k]).leaves]
        if unknown:
            raise ValueError(
                f"{unknown} name no feature of {selection.dataset.path}; its leaves are "
                f"{[leaf.key for leaf in selection.dataset.plan]}"
            )
    decoder = decoder_for(selection.dataset, keys)
    pending: list[EpisodeRecord] = []
    size = 0
    for record in iter_records(selection):
        pending.append(record)
        size += len(record.data)
        if len(pending) >= batch_episodes or size >= batch_bytes:
            yield _batch(decoder, pending)
            pending, size = [], 0
    if pending:
        yield _batch(decoder, pending)


def _batch(decoder: EpisodeDecoder, records: list[EpisodeRecord]) -> DecodedBatch:
    arrays = decode_records(decoder, records)
    num_steps = arrays.pop(NUM_STEPS).astype(np.int64)
    indices = np.asarray([r.index for r in records], dtype=np.int64)
    return DecodedBatch(indices, num_steps, arrays)


def iter_episodes(
    source: Selection | RLDSDataset,
    split: str | None = None,
    *,
    keys: Iterable[str] | None = None,
    batch_episodes: int = 16,
) -> Iterator[dict[str, Any]]:
    """The selected episodes as nested NumPy dicts, in split order.

    Each is ``{"steps": {<field>: [T, ...] arrays, nested as the features}, <episode
    metadata>..., "__index__": <index in the split>}``; strings are UTF-8 ``bytes``.
    """
    for batch in iter_batches(source, split, keys=keys, batch_episodes=batch_episodes):
        for i in range(len(batch.num_steps)):
            yield batch.episode(i)


def read_record(dataset: RLDSDataset, split: str, index: int) -> EpisodeRecord:
    """Episode ``index``'s serialized record, reading only that record (a TFRecord shard's
    record offsets come from its headers, cached per file); a negative index counts from
    the end.

    Raises:
      ShardError: the shard is missing, truncated or corrupt (file and byte named), or holds
        fewer episodes than ``dataset_info.json`` lists.
    """
    from rlds_hub.storage.selection import episode_indices

    (position,) = episode_indices([index], dataset.split(split).num_episodes)
    (read,) = Selection(dataset, split, (int(position),)).shard_reads()
    if dataset.file_format == "array_record":
        (data,) = shards.read_array_record_file(read.path, [read.skip], within=dataset.real_path)
    else:
        found = len(shards.tfrecord_offsets(read.path, within=dataset.real_path))
        _check_count(read, found)
        data = shards.read_tfrecord_at(read.path, read.skip, within=dataset.real_path)
    return EpisodeRecord(int(position), read.path, read.skip, data)


def read_episode(
    dataset: RLDSDataset, split: str, index: int, *, keys: Iterable[str] | None = None
) -> dict[str, Any]:
    """One episode (see :func:`iter_episodes`), reading only its record; a negative index
    counts from the end."""
    record = read_record(dataset, split, index)
    decoder = cached_decoder(dataset, keys)
    arrays = decode_records(decoder, [record])
    num_steps = arrays.pop(NUM_STEPS).astype(np.int64)
    return DecodedBatch(np.array([record.index]), num_steps, arrays).episode(0)


def cached_decoder(dataset: RLDSDataset, keys: Iterable[str] | None = None) -> EpisodeDecoder:
    """:func:`decoder_for`, kept with the opened dataset (one per set of keys)."""
    key = ("decoder", None if keys is None else tuple(keys))
    decoder = dataset.cache.get(key)
    if decoder is None:
        decoder = dataset.cache[key] = decoder_for(dataset, keys)
    return decoder
