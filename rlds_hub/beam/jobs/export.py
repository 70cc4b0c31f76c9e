"""export: a dataset's steps and episodes as Parquet tables (pyarrow), for DuckDB, pandas,
Polars and Spark users.

The output directory holds ``steps/part-NNNNN.parquet`` (one row per step: ``split``,
``episode``, ``step``, then one column per step feature), ``episodes/part-NNNNN.parquet``
(one row per episode: ``split``, ``episode``, ``num_steps``, ``num_transitions``,
``return``, ``terminated``, then one column per episode metadata feature) and
``export.json`` (the provenance, each column's feature shape and dtype, and the size and
CRC32C of every part). Column names are the flattened feature names
(``observation/position``). Scalars are plain columns; arrays are fixed-size lists of their
values in row-major order (the shape is in ``export.json`` and the Parquet schema metadata);
images are their stored bytes (PNG or JPEG as the dataset holds them, never re-encoded);
strings are UTF-8 ``string`` columns (a value that is not UTF-8 stops the export, naming it).
Complex-valued features cannot be stored in Parquet and are listed under ``skipped``.

DuckDB: ``SELECT episode, avg(reward) FROM 'out/steps/*.parquet' GROUP BY episode``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np

from rlds_hub.beam import execution
from rlds_hub.beam.jobs import common
from rlds_hub.beam.reading import (
    RecordUnit,
    read_source_checksums,
    record_units,
    unit_rows,
    write_source_checksum,
)
from rlds_hub.beam.session import WriteSession
from rlds_hub.beam.staging import EXPORT_MARKER
from rlds_hub.format.decode import EpisodeDecoder
from rlds_hub.format.images import encode_png
from rlds_hub.format.plan import Leaf, Plan
from rlds_hub.storage.checksums import file_checksum
from rlds_hub.storage.dataset import open_dataset
from rlds_hub.storage.reader import decode_records, iter_records
from rlds_hub.storage.selection import Selection

JOB = "export"
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
    if leaf.kind != "image":
        return leaf
    return dataclasses.replace(leaf, kind="string", dtype=np.dtype(object), shape=())


def arrow_column(leaf: Leaf, values: np.ndarray, where: str = "") -> Any:
    """The Arrow array of one leaf's values ``[rows, *shape]`` (image leaves: the stored
    frames, from a decoder of :func:`stored_leaf`; PNG-encoded if given as pixels).

    Raises:
      ValueError: a string that is not UTF-8 (``where`` names the episodes).
    """
    import pyarrow as pa

    rows = len(values)
    if leaf.kind == "image":
        return pa.array(
            [
                frame if isinstance(frame, bytes) else encode_png(np.asarray(frame, np.uint8))
                for frame in values
            ],
            pa.binary(),
        )
    if leaf.kind == "string":
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
    def __init__(self, staging: str, parts: dict[tuple, int], progress: str, sources: str):
        self._staging = staging
        self._parts = parts
        self._progress = progress
        self._sources = sources

    def setup(self) -> None:
        self._datasets: dict[str, Any] = {}
        self._counter = execution.Counter(self._progress)

    def teardown(self) -> None:
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
        from rlds_hub.format.decode import NUM_STEPS

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
            path = Path(self._staging) / directory / f"part-{part:05d}.parquet"
            tmp = path.with_name(f".tmp-{path.name}")
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, path)
            out[directory] = f"{directory}/{path.name}"
        if unit.checksum:
            write_source_checksum(self._sources, unit.path, unit.checksum)
        self._counter.add(len(records))
        yield {"part": part, **out}


def export(
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    split: str | None = None,
    overwrite: bool = False,
    beam_args: Sequence[str] | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Exports ``input`` (its ``split`` selection, default every split) to Parquet tables in
    ``output`` (see the module docstring)."""
    dataset = open_dataset(input)
    selections = common.input_selections(dataset, split)
    units = record_units(selections, 0)
    parts = {unit.key: i for i, unit in enumerate(units)}
    leaves, skipped = exportable(dataset.plan)
    flags = common.default_flags(beam_args)
    with WriteSession(output, overwrite=overwrite, inputs=[input]) as session:
        for directory in (STEPS_DIR, EPISODES_DIR):
            (session.path / directory).mkdir()

        def build(pipeline: Any) -> None:
            _ = (
                pipeline
                | "Units" >> beam.Create(units)
                | "SpreadUnits" >> beam.Reshuffle()
                | "Export"
                >> beam.ParDo(
                    _ExportUnit(
                        os.fspath(session.path),
                        parts,
                        os.fspath(session.pieces),
                        os.fspath(session.sources),
                    )
                )
            )

        seconds = session.run(
            flags, build, total=sum(len(u.indices) for u in units), description=JOB, quiet=quiet
        )
        files = {}
        for directory in (STEPS_DIR, EPISODES_DIR):
            found = sorted((session.path / directory).glob("part-*.parquet"))
            if len(found) != len(units):
                raise RuntimeError(
                    f"the pipeline finished but wrote {len(found)} of "
                    f"{len(units)} {directory} parts; nothing was committed"
                )
            for path in found:
                files[f"{directory}/{path.name}"] = file_checksum(path)
        sources = [
            {
                "path": os.path.abspath(dataset.path),
                "format": "rlds",
                "name": dataset.name,
                "files": read_source_checksums(session.sources).get(dataset.path, {}),
            }
        ]
        marker = {
            "format": "parquet",
            "dataset": dataset.name,
            "tables": {
                STEPS_DIR: {
                    "index": ["split", "episode", "step"],
                    "columns": {leaf.name: _describe(leaf) for leaf in leaves if leaf.in_steps},
                },
                EPISODES_DIR: {
                    "index": ["split", "episode"],
                    "columns": {leaf.name: _describe(leaf) for leaf in leaves if not leaf.in_steps},
                },
            },
            "skipped": skipped,
            "splits": {s.split: s.num_episodes for s in selections},
            "files": files,
            "provenance": execution.provenance(
                JOB, {"input": input, "output": output, "split": split}, sources, flags
            ),
        }
        (session.path / EXPORT_MARKER).write_text(json.dumps(marker, indent=1))
        path = session.commit()
    summary = {
        "path": os.fspath(path),
        "parts": len(units),
        "episodes": sum(s.num_episodes for s in selections),
    }
    summary["seconds"] = seconds
    return summary


def _describe(leaf: Leaf) -> dict[str, Any]:
    encoding = None
    if leaf.kind == "image":  # the stored frames: the features' format, else per frame
        encoding = leaf.image_format or "png or jpeg (as stored, per frame)"
    return {
        "shape": list(leaf.shape),
        "dtype": "string" if leaf.kind == "string" else leaf.dtype.name,
        "encoding": encoding,
    }


def main(args: argparse.Namespace, flags: Sequence[str]) -> int:
    summary = export(
        args.input,
        args.output,
        split=args.split,
        overwrite=args.overwrite,
        beam_args=flags,
        quiet=args.quiet,
    )
    print(
        f"export: wrote {summary['episodes']} episodes to {summary['path']} "
        f"({summary['parts']} parts each of steps/ and episodes/) in "
        f"{summary['seconds']:.1f} s"
    )
    return 0
