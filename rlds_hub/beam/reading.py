"""Reading RLDS datasets in a pipeline: ``ReadEpisodes`` turns dataset selections into
:class:`~rlds_hub.beam.sink.EncodedEpisode` s (the serialized records, unchanged, with their
episode-table rows), split into work units by shard and, within big shards, by record range.

Every unit reads through the one reader (:func:`rlds_hub.storage.reader.iter_records`,
CRC-checked) and gets its rows from ``episodes.jsonl`` when it covers the split (nothing is
decoded), otherwise by decoding only the fields the table needs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam

from rlds_hub.beam import execution
from rlds_hub.beam.defaults import DEFAULT_UNIT_BYTES
from rlds_hub.beam.sink import SOURCE, EncodedEpisode
from rlds_hub.storage import dataset_files
from rlds_hub.storage.checksums import file_checksum
from rlds_hub.storage.dataset import RLDSDataset, open_dataset
from rlds_hub.storage.episodes import episode_table, rows_from_batch, table_plan
from rlds_hub.storage.reader import DecodedBatch, decode_records, decoder_for, iter_records
from rlds_hub.storage.selection import Selection


@dataclasses.dataclass(frozen=True)
class RecordUnit:
    """Episodes ``indices`` (ascending, all in one shard) of ``split`` of the dataset at
    ``path``; ``checksum``: a shard file this unit also checksums for provenance."""

    key: tuple
    path: str
    split: str
    split_no: int
    input_no: int
    indices: tuple[int, ...]
    checksum: str | None = None


def record_units(
    selections: Sequence[Selection], input_no: int = 0, *, unit_bytes: int = DEFAULT_UNIT_BYTES
) -> list[RecordUnit]:
    """The work units reading ``selections`` (of one dataset), in order."""
    units = []
    checksummed: set[str] = set()
    for split_no, selection in enumerate(selections):
        for read in selection.shard_reads():
            size = _file_size(read.path)
            per_episode = max(size // max(read.shard_episodes, 1), 1)
            chunk = max(1, unit_bytes // per_episode)
            for start in range(0, read.take, chunk):
                first = read.first + start
                count = min(chunk, read.take - start)
                checksum = None
                if read.path not in checksummed:
                    checksummed.add(read.path)
                    checksum = read.path
                units.append(
                    RecordUnit(
                        key=(input_no, split_no, first),
                        path=selection.dataset.path,
                        split=selection.split,
                        split_no=split_no,
                        input_no=input_no,
                        indices=tuple(range(first, first + count)),
                        checksum=checksum,
                    )
                )
    return units


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # the reader reports the missing shard, naming it


class _ReadUnit(beam.DoFn):
    def __init__(self, sources_dir: str | None, progress_dir: str | None = None):
        self._sources_dir = sources_dir
        self._progress_dir = progress_dir

    def setup(self) -> None:
        self._datasets: dict[str, RLDSDataset] = {}
        self._index_rows: dict[tuple[str, str], Sequence[dict[str, Any]]] = {}
        self._counter = execution.Counter(self._progress_dir) if self._progress_dir else None

    def teardown(self) -> None:
        if self._counter is not None:
            self._counter.close()

    def process(self, unit: RecordUnit) -> Iterator[EncodedEpisode]:
        dataset = self._datasets.get(unit.path)
        if dataset is None:
            dataset = self._datasets[unit.path] = open_dataset(unit.path)
        selection = Selection(dataset, unit.split, unit.indices)
        records = list(iter_records(selection))
        rows = unit_rows(dataset, unit.split, records)
        index_rows = self._index_rows.get((unit.path, unit.split))
        if index_rows is None:  # once per split, not per unit
            index_rows = self._index_rows[unit.path, unit.split] = (
                dataset.episode_rows(unit.split) or ()
            )
        for record, row in zip(records, rows, strict=True):
            previous = index_rows[record.index] if index_rows else {}
            row = {
                **row,
                SOURCE: episode_source(
                    unit.input_no, unit.split, record.index, previous.get(SOURCE)
                ),
            }
            yield EncodedEpisode(
                (unit.input_no, unit.split_no, record.index), unit.split, bytes(record.data), row
            )
        if unit.checksum and self._sources_dir:
            write_source_checksum(self._sources_dir, unit.path, unit.checksum)
        if self._counter is not None:
            self._counter.add(len(records))


def episode_source(
    input_no: int, split: str, episode: int, previous: dict[str, Any] | None
) -> dict[str, Any]:
    """The ``source`` of an episode a job copies: its input (the position in the output's
    ``provenance.sources``), split and episode index there, and ``origin``: the source file
    or log folder episode it was first converted from, carried through any chain of jobs."""
    out: dict[str, Any] = {"input": input_no, "split": split, "episode": episode}
    if previous:
        origin = previous.get("origin") if "input" in previous else previous
        if origin:
            out["origin"] = origin
    return out


def unit_rows(dataset: RLDSDataset, split: str, records: Sequence[Any]) -> list[dict[str, Any]]:
    """Episode-table rows of some records of ``split``: from ``episodes.jsonl`` if it covers
    the split, else decoded (only the table's fields)."""
    if not records:
        return []
    if dataset.episode_rows(split) is not None:
        return episode_table(dataset, split, episodes=[r.index for r in records])
    plan = table_plan(dataset)
    decoder = decoder_for(dataset, plan.keys)
    arrays = decode_records(decoder, records)
    from rlds_hub.format.decode import NUM_STEPS

    num_steps = arrays.pop(NUM_STEPS).astype("int64")
    import numpy as np

    batch = DecodedBatch(np.asarray([r.index for r in records], np.int64), num_steps, arrays)
    return rows_from_batch(plan, batch)


def write_source_checksum(sources_dir: str, root: str, path: str) -> None:
    """Records the size and CRC32C of a source file (for the output's provenance)."""
    name = os.path.basename(path) if os.path.isfile(root) else os.path.relpath(path, root)
    entry = {"root": root, "file": name, **file_checksum(path)}
    name = hashlib.sha1(path.encode()).hexdigest() + ".json"
    dataset_files.atomic_write(Path(sources_dir) / name, json.dumps(entry).encode(), sync=False)


def read_source_checksums(sources_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{root: {file: {"bytes", "crc32c"}}}`` written by the units."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(sources_dir).glob("*.json")):
        entry = json.loads(path.read_text())
        out.setdefault(entry["root"], {})[entry["file"]] = {
            "bytes": entry["bytes"],
            "crc32c": entry["crc32c"],
        }
    return {root: dict(sorted(files.items())) for root, files in out.items()}


class ReadEpisodes(beam.PTransform):
    """Reads the episodes of some selections of one dataset as ``EncodedEpisode`` s keyed
    ``(input_no, selection number, episode index)``.

    Args:
      selections: :class:`~rlds_hub.storage.selection.Selection` s of one dataset (e.g.
        from :func:`rlds_hub.storage.query.select_splits`).
      input_no: the first element of every key (to order several inputs).
      sources_dir: where units record the checksums of the shards they read (provenance).
      unit_bytes: shards larger than this are read as several record ranges.
      progress_dir: where units count the episodes they read (``execution.Counter`` files, for
        a progress bar of the input: a filter writes fewer episodes than it reads).
    """

    def __init__(
        self,
        selections: Sequence[Selection],
        *,
        input_no: int = 0,
        sources_dir: str | os.PathLike | None = None,
        unit_bytes: int = DEFAULT_UNIT_BYTES,
        progress_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        self._units = record_units(selections, input_no, unit_bytes=unit_bytes)
        self._sources_dir = os.fspath(sources_dir) if sources_dir is not None else None
        self._progress_dir = os.fspath(progress_dir) if progress_dir is not None else None

    @property
    def units(self) -> list[RecordUnit]:
        return self._units

    @property
    def num_episodes(self) -> int:
        return sum(len(u.indices) for u in self._units)

    def expand(self, pbegin: Any) -> Any:
        return (
            pbegin
            | "Units" >> beam.Create(self._units)
            | "SpreadUnits" >> beam.Reshuffle()
            | "ReadUnits" >> beam.ParDo(_ReadUnit(self._sources_dir, self._progress_dir))
        )
