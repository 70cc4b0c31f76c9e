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
import json
import os
from collections.abc import Sequence
from typing import Any

from rlds_hub.beam import execution
from rlds_hub.beam.job_values import Output, Run
from rlds_hub.beam.jobs import common
from rlds_hub.beam.parquet import EPISODES_DIR, STEPS_DIR, ExportParquet, exportable
from rlds_hub.beam.reading import read_source_checksums
from rlds_hub.beam.session import WriteSession
from rlds_hub.beam.staging import EXPORT_MARKER
from rlds_hub.format.plan import Leaf, LeafKind
from rlds_hub.storage.checksums import file_checksum
from rlds_hub.storage.dataset import open_dataset

JOB = "export"


def export(
    input: str | os.PathLike,
    output: Output | str | os.PathLike,
    *,
    split: str | None = None,
    run: Run | None = None,
) -> dict[str, Any]:
    """Exports ``input`` (its ``split`` selection, default every split) to Parquet tables in
    ``output`` (see the module docstring; only its path and ``overwrite`` apply)."""
    output, run = Output.of(output), Run.of(run)
    output.refuse(JOB, "sharding", "file_format", "name", "image_encoding")
    dataset = open_dataset(input)
    selections = common.input_selections(dataset, split)
    leaves, skipped = exportable(dataset.plan)
    flags = run.flags()
    with WriteSession(output.path, overwrite=output.overwrite, inputs=[input]) as session:
        for directory in (STEPS_DIR, EPISODES_DIR):
            (session.path / directory).mkdir()
        tables = ExportParquet(
            selections, session.path, sources_dir=session.sources, progress_dir=session.pieces
        )
        units = tables.units

        def build(pipeline: Any) -> None:
            _ = pipeline | "ExportParquet" >> tables

        seconds = session.run(
            flags, build, total=tables.num_episodes, description=JOB, quiet=run.quiet
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
                JOB, {"input": input, "output": output.path, "split": split}, sources, flags
            ).to_json(),
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
    if leaf.kind == LeafKind.IMAGE:  # the stored frames: the features' format, else per frame
        encoding = leaf.image_format or "png or jpeg (as stored, per frame)"
    return {
        "shape": list(leaf.shape),
        "dtype": "string" if leaf.kind == LeafKind.STRING else leaf.dtype.name,
        "encoding": encoding,
    }


def main(args: argparse.Namespace, flags: Sequence[str]) -> int:
    summary = export(
        args.input,
        Output(args.output, overwrite=args.overwrite),
        split=args.split,
        run=Run(beam_args=flags, quiet=args.quiet),
    )
    print(
        f"export: wrote {summary['episodes']} episodes to {summary['path']} "
        f"({summary['parts']} parts each of steps/ and episodes/) in "
        f"{summary['seconds']:.1f} s"
    )
    return 0
