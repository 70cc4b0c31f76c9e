"""The dataset sink: ``WriteDataset`` writes a PCollection of encoded episodes as the shards
of an RLDS dataset in a staging directory; :func:`finish_dataset` (in the driver, after the
pipeline) adds the metadata files and commits the directory atomically.

It does not use Beam's file sinks (under the DaskRunner their finalisation wrote no shards):

1. ``_WritePieces`` appends each episode, TFRecord-framed, to a piece file of its bundle
   (``.pieces/<random>``) and emits a small :class:`PieceEntry` (key, file, byte range, row).
   No episode bytes travel through Beam's shuffle, so memory does not grow with the dataset.
2. The entries (a few hundred bytes per episode) are combined into one list and sorted by the
   episodes' keys; :func:`plan_shards` cuts each split into shards by episode count or bytes.
   Shard contents therefore depend on the keys only, never on worker timing or bundling:
   the same input gives the same shard bytes on every runner.
3. ``_AssembleShard`` copies each shard's byte ranges from the pieces into the final shard file
   (TFRecord: a plain copy; ArrayRecord: the records re-framed), with its CRC32C, and writes a
   receipt that the driver reads to build ``dataset_info.json``, ``episodes.jsonl`` and
   ``checksums.json``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import struct
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
import crc32c

from rlds_hub.beam.defaults import DEFAULT_MAX_BYTES_PER_SHARD, DEFAULT_MAX_EPISODES_PER_SHARD
from rlds_hub.beam.staging import PIECES, RECEIPTS
from rlds_hub.storage import dataset_files
from rlds_hub.storage.checksums import checksums_content
from rlds_hub.storage.episode_index import index_line, json_safe
from rlds_hub.storage.episodes import index_row
from rlds_hub.storage.shards import framed
from rlds_hub.storage.writer import new_dataset_info

SOURCE = "source"  # an episode row's origin (see _index_row)
_TFRECORD_OVERHEAD = 16  # 8-byte length, its CRC, the data's CRC


class EmptyOutputError(dataset_files.DatasetError):
    """The job would write a dataset with no episodes."""


@dataclasses.dataclass(frozen=True)
class EncodedEpisode:
    """One serialized episode on its way to the sink.

    ``key`` orders the episodes of the output (unique, sortable: a tuple of ints and
    strings); ``split`` is the output split; ``row`` the episode's table row
    (:func:`rlds_hub.storage.episodes.rows_from_batch`: num_steps, terminated, return,
    metadata).
    """

    key: tuple
    split: str
    record: bytes
    row: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class PieceEntry:
    """Where the sink's first stage put one episode."""

    key: tuple
    split: str
    piece: str
    offset: int
    length: int  # framed TFRecord bytes
    row: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Sharding:
    """How each output split is cut into shards: exactly ``num_shards`` (episodes spread
    evenly, in order), or a new shard whenever ``max_episodes_per_shard`` or
    ``max_bytes_per_shard`` would be exceeded."""

    num_shards: int | None = None
    max_episodes_per_shard: int | None = DEFAULT_MAX_EPISODES_PER_SHARD
    max_bytes_per_shard: int | None = DEFAULT_MAX_BYTES_PER_SHARD

    def __post_init__(self) -> None:
        for name in ("num_shards", "max_episodes_per_shard", "max_bytes_per_shard"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


@dataclasses.dataclass(frozen=True)
class ShardTask:
    split: str
    index: int
    num_shards: int
    first_episode: int  # index in the split of the shard's first episode
    entries: tuple[PieceEntry, ...]


def frame_tfrecord(data: bytes | memoryview) -> list[bytes | memoryview]:
    """A record's TFRecord framing (the core's): length, CRC, data, CRC."""
    return framed(data)


class _WritePieces(beam.DoFn):
    """Appends episodes to one piece file per bundle; emits a PieceEntry per episode."""

    def __init__(self, pieces_dir: str):
        self._dir = pieces_dir
        self._fd: int | None = None

    def start_bundle(self) -> None:
        self._fd = None
        self._offset = 0
        self._count = 0

    def process(self, episode: EncodedEpisode) -> Iterator[PieceEntry]:
        if not isinstance(episode, EncodedEpisode):
            raise TypeError(
                f"WriteDataset takes EncodedEpisode elements, got {type(episode).__name__}"
            )
        if self._fd is None:
            self._name = uuid.uuid4().hex
            path = os.path.join(self._dir, self._name)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            self._counter = os.open(path + ".n", os.O_WRONLY | os.O_CREAT, 0o644)
        parts = frame_tfrecord(episode.record)
        length = sum(len(p) for p in parts)
        _write_all(self._fd, parts)
        entry = PieceEntry(
            episode.key, episode.split, self._name, self._offset, length, episode.row
        )
        self._offset += length
        self._count += 1
        os.pwrite(self._counter, struct.pack("<Q", self._count), 0)  # progress, for the driver
        yield entry

    def finish_bundle(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            os.close(self._counter)
            self._fd = None


def _write_all(fd: int, parts: Sequence[bytes | memoryview]) -> None:
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def plan_shards(
    entries: Iterable[PieceEntry], sharding: Sharding, split_order: Sequence[str] = ()
) -> list[ShardTask]:
    """Sorts the entries by key and cuts each split into shards (see :class:`Sharding`).

    Raises:
      ValueError: two episodes with the same key (a job's bug, never silently merged).
    """
    by_split: dict[str, list[PieceEntry]] = {}
    for entry in entries:
        by_split.setdefault(entry.split, []).append(entry)
    tasks = []
    for split in _ordered_splits(by_split, split_order):
        items = sorted(by_split[split], key=lambda e: e.key)
        for a, b in itertools.pairwise(items):
            if a.key == b.key:
                raise ValueError(f"two episodes of split {split!r} have the same key {a.key}")
        groups = _cut(items, sharding)
        first = 0
        for index, group in enumerate(groups):
            tasks.append(ShardTask(split, index, len(groups), first, tuple(group)))
            first += len(group)
    return tasks


def _ordered_splits(by_split: dict[str, Any], split_order: Sequence[str]) -> list[str]:
    known = [s for s in split_order if s in by_split]
    return known + sorted(s for s in by_split if s not in known)


def _cut(items: list[PieceEntry], sharding: Sharding) -> list[list[PieceEntry]]:
    if sharding.num_shards is not None:
        count = min(sharding.num_shards, len(items))
        bounds = [i * len(items) // count for i in range(count + 1)]
        return [items[bounds[i] : bounds[i + 1]] for i in range(count)]
    groups: list[list[PieceEntry]] = []
    current: list[PieceEntry] = []
    size = 0
    for entry in items:
        full = current and (
            (
                sharding.max_episodes_per_shard is not None
                and len(current) >= sharding.max_episodes_per_shard
            )
            or (
                sharding.max_bytes_per_shard is not None
                and size + entry.length > sharding.max_bytes_per_shard
            )
        )
        if full:
            groups.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.length
    if current:
        groups.append(current)
    return groups


class _AssembleShard(beam.DoFn):
    """Writes one shard from the pieces and a receipt for the driver."""

    def __init__(self, staging: str, name: str, file_format: str):
        self._staging = staging
        self._name = name
        self._format = file_format

    def process(self, task: ShardTask) -> Iterator[dict[str, Any]]:
        staging = Path(self._staging)
        filename = dataset_files.shard_filename(self._name, task.split, self._format, task.index)
        tmp = staging / f"{dataset_files.TMP_PREFIX}{filename}-{uuid.uuid4().hex[:8]}"
        pieces: dict[str, int] = {}
        try:
            if self._format == "tfrecord":
                checksum = self._copy_tfrecord(staging, tmp, task, pieces)
            else:
                checksum = self._write_array_record(staging, tmp, task, pieces)
        finally:
            for fd in pieces.values():
                os.close(fd)
        os.rename(tmp, staging / filename)
        rows = [
            _index_row(entry.row, task.split, task.first_episode + i)
            for i, entry in enumerate(task.entries)
        ]
        receipt = {
            "split": task.split,
            "index": task.index,
            "num_shards": task.num_shards,
            "file": filename,
            "episodes": len(task.entries),
            "checksum": checksum,
            "rows": rows,
        }
        receipt_path = staging / RECEIPTS / f"shard-{task.split}-{task.index:05d}.json"
        dataset_files.atomic_write(
            receipt_path, json.dumps(receipt, default=json_safe).encode(), sync=False
        )
        yield {"split": task.split, "index": task.index}

    @staticmethod
    def _read(staging: Path, entry: PieceEntry, pieces: dict[str, int]) -> bytes:
        fd = pieces.get(entry.piece)
        if fd is None:
            fd = pieces[entry.piece] = os.open(staging / PIECES / entry.piece, os.O_RDONLY)
        data = os.pread(fd, entry.length, entry.offset)
        if len(data) != entry.length:
            raise OSError(f"piece {entry.piece} is shorter than recorded (worker lost data)")
        return data

    def _copy_tfrecord(
        self, staging: Path, tmp: Path, task: ShardTask, pieces: dict[str, int]
    ) -> dict[str, Any]:
        crc, size = 0, 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            for entry in task.entries:
                data = self._read(staging, entry, pieces)
                crc = crc32c.crc32c(data, crc)
                _write_all(fd, [data])
                size += len(data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return {"bytes": size, "crc32c": f"{crc:08x}"}

    def _write_array_record(
        self, staging: Path, tmp: Path, task: ShardTask, pieces: dict[str, int]
    ) -> dict[str, Any]:
        from array_record.python import array_record_module

        from rlds_hub.storage.checksums import file_checksum

        writer = array_record_module.ArrayRecordWriter(os.fspath(tmp), "group_size:1")
        try:
            for entry in task.entries:
                framed = self._read(staging, entry, pieces)
                writer.write(framed[12:-4])
        finally:
            writer.close()
        return file_checksum(tmp)


def _index_row(row: dict[str, Any], split: str, episode: int) -> dict[str, Any]:
    """The ``episodes.jsonl`` row of an output episode, with its ``source`` (where it came
    from: a source episode or log folder, or an input dataset's episode) when it has one."""
    out = index_row(row, split, episode)
    if row.get(SOURCE):
        out[SOURCE] = row[SOURCE]
    return out


class WriteDataset(beam.PTransform):
    """Writes :class:`EncodedEpisode` s as the shards of an RLDS dataset into
    ``staging`` (a :class:`~rlds_hub.beam.staging.Staging` directory); call
    :func:`finish_dataset` after the pipeline has run.

    Args:
      staging: the staging directory.
      name: the TFDS dataset name (shard file names start with it).
      file_format: "tfrecord" or "array_record".
      sharding: how splits are cut into shards.
      split_order: the order of splits in ``dataset_info.json`` (others follow, sorted).
    """

    def __init__(
        self,
        staging: Any,
        name: str,
        *,
        file_format: str = "tfrecord",
        sharding: Sharding | None = None,
        split_order: Sequence[str] = (),
    ):
        super().__init__()
        dataset_files.check_dataset_name(name)
        dataset_files.check_file_format(file_format)
        self._staging = os.fspath(staging.path)
        self._pieces = os.fspath(staging.pieces)
        self._name = name
        self._format = file_format
        self._sharding = sharding or Sharding()
        self._split_order = tuple(split_order)

    def expand(self, episodes: Any) -> Any:
        sharding, order = self._sharding, self._split_order
        return (
            episodes
            | "WritePieces" >> beam.ParDo(_WritePieces(self._pieces))
            | "CollectEntries" >> beam.combiners.ToList().without_defaults()
            | "PlanShards" >> beam.FlatMap(lambda entries: plan_shards(entries, sharding, order))
            | "SpreadShards" >> beam.Reshuffle()
            | "AssembleShards"
            >> beam.ParDo(_AssembleShard(self._staging, self._name, self._format))
        )


def read_receipts(staging: Any) -> list[dict[str, Any]]:
    """The shard receipts of a finished pipeline, checked for completeness."""
    receipts = [json.loads(p.read_text()) for p in sorted(Path(staging.receipts).glob("*.json"))]
    by_split: dict[str, list[dict[str, Any]]] = {}
    for receipt in receipts:
        by_split.setdefault(receipt["split"], []).append(receipt)
    for split, items in by_split.items():
        items.sort(key=lambda r: r["index"])
        expected = items[0]["num_shards"]
        if [r["index"] for r in items] != list(range(expected)):
            raise dataset_files.DatasetError(
                f"the pipeline finished but split {split!r} is missing shards "
                f"({len(items)} of {expected} written); nothing was committed"
            )
    return receipts


def finish_dataset(
    staging: Any,
    *,
    name: str,
    features_json: dict[str, Any],
    metadata: dict[str, Any],
    file_format: str,
    split_order: Sequence[str] = (),
    description: str = "",
    allow_empty: bool = False,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes the metadata files of the shards the pipeline wrote into ``staging``, then
    commits it to the output path. Returns ``{"splits": {split: episodes}, "steps": S,
    "path": output}``. ``info``: more ``dataset_info.json`` fields (an input's citation,
    homepage, release notes, licence and version: :func:`inherited_info`).

    Raises:
      EmptyOutputError: no episode was written (unless ``allow_empty``); nothing committed.
    """
    receipts = read_receipts(staging)
    if not receipts and not allow_empty:
        raise EmptyOutputError(
            f"the job selected no episodes, so no dataset was written to {staging.output}"
        )
    by_split: dict[str, list[dict[str, Any]]] = {}
    for receipt in receipts:
        by_split.setdefault(receipt["split"], []).append(receipt)
    splits, rows, sums = [], [], {}
    steps = 0
    for split in _ordered_splits(by_split, split_order):
        items = sorted(by_split[split], key=lambda r: r["index"])
        splits.append(
            {
                "name": split,
                "numBytes": str(sum(r["checksum"]["bytes"] for r in items)),
                "shardLengths": [str(r["episodes"]) for r in items],
                "filepathTemplate": dataset_files.SHARD_TEMPLATE,
            }
        )
        for receipt in items:
            rows += receipt["rows"]
            sums[receipt["file"]] = receipt["checksum"]
            steps += sum(int(r["num_steps"]) for r in receipt["rows"])
    info = {**new_dataset_info(name, file_format, description), **(info or {}), "splits": splits}
    path = Path(staging.path)
    _dump(path / dataset_files.FEATURES, features_json)
    _dump(path / dataset_files.METADATA, metadata)
    lines = b"".join(index_line(row) for row in rows)
    dataset_files.atomic_write(path / dataset_files.EPISODE_INDEX, lines, sync=False)
    dataset_files.atomic_write(path / dataset_files.CHECKSUMS, checksums_content(sums), sync=False)
    _dump(path / dataset_files.DATASET_INFO, info)  # last: it makes the directory a dataset
    output = staging.commit()
    return {
        "path": os.fspath(output),
        "steps": steps,
        "splits": {s["name"]: sum(int(n) for n in s["shardLengths"]) for s in splits},
        "shards": len(sums),
    }


# What a dataset's ``dataset_info.json`` says about its content beyond the shards: TFDS's
# description, citation, homepage (location), release notes, licence (redistributionInfo),
# version and builder config; a job's output keeps its input's.
INHERITED_INFO = (
    "description",
    "citation",
    "location",
    "releaseNotes",
    "redistributionInfo",
    "version",
    "configName",
    "configDescription",
)


def inherited_info(info: dict[str, Any]) -> dict[str, Any]:
    """The fields of an input's ``dataset_info.json`` an output keeps (:data:`INHERITED_INFO`)."""
    return {key: info[key] for key in INHERITED_INFO if info.get(key) not in (None, "", {}, [])}


def _dump(path: Path, data: Any) -> None:
    dataset_files.atomic_write(
        path, json.dumps(data, indent=1, default=json_safe).encode(), sync=False
    )
