"""``ExportParquet``: a dataset's steps and episodes as Parquet tables (pyarrow), for the
export job and users' own pipelines. Each work unit (a shard or a record range) writes
``steps/part-NNNNN.parquet`` and ``episodes/part-NNNNN.parquet``; see
:mod:`rlds_hub.beam.jobs.export` for the columns."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np

from rlds_hub.beam import execution
from rlds_hub.beam.reading import RecordUnit, record_units, unit_rows, write_source_checksum
from rlds_hub.format.decode import NUM_STEPS, EpisodeDecoder
from rlds_hub.format.images import encode_png
from rlds_hub.format.plan import Leaf, LeafKind, Plan
from rlds_hub.storage.dataset import open_dataset
from rlds_hub.storage.reader import decode_records, iter_records
from rlds_hub.storage.selection import Selection

STEPS_DIR = "steps"
EPISODES_DIR = "episodes"


def exportable(plan: Plan) -> tuple[list[Leaf], dict[str, str]]:
    """The leaves that become columns, and the skipped ones with the reason."""
    keep, skipped = [], {}
    for leaf in plan:
        if leaf.dtype.kind == "c":
            skipped[leaf.key] = "complex numbers have no Parquet type"
        else:
            keep.append(leaf)
    return keep, skipped


def stored_leaf(leaf: Leaf) -> Leaf:
    """The leaf to decode for export: an image leaf as its stored bytes (one entry per
    step, PNG or JPEG as written), every other leaf as it is."""
    if leaf.kind != LeafKind.IMAGE:
        return leaf
    return dataclasses.replace(leaf, kind=LeafKind.STRING, dtype=np.dtype(object), shape=())


def arrow_column(leaf: Leaf, values: np.ndarray, where: str = "") -> Any:
    """The Arrow array of one leaf's values ``[rows, *shape]`` (image leaves: the stored
    frames, from a decoder of :func:`stored_leaf`; PNG-encoded if given as pixels).

    Raises:
      ValueError: a string that is not UTF-8 (``where`` names the episodes).
    """
    import pyarrow as pa

    rows = len(values)
    if leaf.kind == LeafKind.IMAGE:
        return pa.array(
            [
                frame if isinstance(frame, bytes) else encode_png(np.asarray(frame, np.uint8))
                for frame in values
            ],
            pa.binary(),
        )
    if leaf.kind == LeafKind.STRING:
        flat = [_text(v, leaf, where) for v in np.asarray(values, object).reshape(rows, -1).ravel()]
        if not leaf.shape:
            return pa.array(flat, pa.string())
        return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.string()), leaf.size)
    array = np.ascontiguousarray(values)
    if not leaf.shape:
        return pa.array(array.reshape(rows))
    flat = pa.array(array.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, leaf.size)


def _text(value: Any, leaf: Leaf, where: str) -> str:
    if not isinstance(value, bytes):
        return str(value)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{leaf.name}{where}: holds bytes that are not UTF-8 text ({value[:20]!r}...: {e}); "
            "Parquet string columns hold UTF-8, so nothing was exported"
        ) from None


class _ExportUnit(beam.DoFn):
    """Writes one work unit's steps and episodes parts; yields ``{"part", "steps",
    "episodes"}`` (the parts' paths relative to the output directory)."""

    def __init__(
        self, directory: str, parts: dict[tuple, int], progress: str | None, sources: str | None
    ):
        self._directory = directory
        self._parts = parts
        self._progress = progress
        self._sources = sources

    def setup(self) -> None:
        self._datasets: dict[str, Any] = {}
        self._counter = execution.Counter(self._progress) if self._progress else None
        for directory in (STEPS_DIR, EPISODES_DIR):
            os.makedirs(os.path.join(self._directory, directory), exist_ok=True)

    def teardown(self) -> None:
        if self._counter is not None:
            self._counter.close()

    def process(self, unit: RecordUnit) -> Iterator[dict[str, Any]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        dataset = self._datasets.get(unit.path)
        if dataset is None:
            dataset = self._datasets[unit.path] = open_dataset(unit.path)
        leaves, _ = exportable(dataset.plan)
        records = list(iter_records(Selection(dataset, unit.split, unit.indices)))
        rows = unit_rows(dataset, unit.split, records)
        arrays = decode_records(EpisodeDecoder([stored_leaf(leaf) for leaf in leaves]), records)
        num_steps = arrays.pop(NUM_STEPS).astype(np.int64)
        episodes = np.asarray([r.index for r in records], np.int64)
        total = int(num_steps.sum())
        steps = {
            "split": pa.array([unit.split] * total, pa.string()),
            "episode": pa.array(np.repeat(episodes, num_steps)),
            "step": pa.array(
                np.concatenate([np.arange(n) for n in num_steps])
                if len(num_steps)
                else np.zeros(0, np.int64)
            ),
        }
        metadata = {
            "split": pa.array([unit.split] * len(records), pa.string()),
            "episode": pa.array(episodes),
            "num_steps": pa.array(num_steps),
            "num_transitions": pa.array([r["num_transitions"] for r in rows], pa.int64()),
            "return": pa.array([r["return"] for r in rows], pa.float64()),
            "terminated": pa.array([r["terminated"] for r in rows], pa.bool_()),
        }
        for leaf in leaves:
            target = steps if leaf.in_steps else metadata
            if leaf.name in target:
                raise ValueError(f"{leaf.key}: its column name clashes with an index column")
            where = f" (split {unit.split!r}, episodes {unit.indices[0]}..{unit.indices[-1]})"
            target[leaf.name] = arrow_column(leaf, arrays[leaf.key], where)
        part = self._parts[unit.key]
        out = {}
        for directory, columns in ((STEPS_DIR, steps), (EPISODES_DIR, metadata)):
            table = pa.table(columns)
            shapes = {leaf.name: list(leaf.shape) for leaf in leaves}
            table = table.replace_schema_metadata(
                {"rlds_hub.shapes": json.dumps(shapes), "rlds_hub.dataset": dataset.name}
            )
            path = Path(self._directory) / directory / f"part-{part:05d}.parquet"
            tmp = path.with_name(f".tmp-{path.name}")
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, path)
            out[directory] = f"{directory}/{path.name}"
        if unit.checksum and self._sources:
            write_source_checksum(self._sources, unit.path, unit.checksum)
        if self._counter is not None:
            self._counter.add(len(records))
        yield {"part": part, **out}


class ExportParquet(beam.PTransform):
    """Writes the steps and episodes of ``selections`` (one dataset's) as Parquet parts in
    ``directory`` (``steps/`` and ``episodes/``, one part of each per work unit, numbered in
    unit order); a PCollection of ``{"part", "steps", "episodes"}``, one per part.

    Args:
      selections: :class:`~rlds_hub.storage.selection.Selection` s of one dataset.
      directory: the output directory (workers write into it directly).
      sources_dir: where units record the checksums of the shards they read.
      progress_dir: where workers count the episodes they export (a progress bar's counters).
    """

    def __init__(
        self,
        selections: Sequence[Selection],
        directory: str | os.PathLike,
        *,
        sources_dir: str | os.PathLike | None = None,
        progress_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.units = record_units(selections, 0)
        self._parts = {unit.key: i for i, unit in enumerate(self.units)}
        self._directory = os.fspath(directory)
        self._sources = os.fspath(sources_dir) if sources_dir is not None else None
        self._progress = os.fspath(progress_dir) if progress_dir is not None else None

    @property
    def num_episodes(self) -> int:
        return sum(len(u.indices) for u in self.units)

    def expand(self, pbegin: Any) -> Any:
        export = _ExportUnit(self._directory, self._parts, self._progress, self._sources)
        return (
            pbegin
            | "Units" >> beam.Create(self.units)
            | "SpreadUnits" >> beam.Reshuffle()
            | "Export" >> beam.ParDo(export)
        )
