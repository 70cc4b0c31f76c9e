"""What the jobs that read RLDS datasets share: selections of the input, output metadata,
the read-transform-write-and-commit step and the summary line."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from rlds_hub.beam import execution
from rlds_hub.beam.job_values import Output, Run
from rlds_hub.beam.reading import ReadEpisodes, read_source_checksums
from rlds_hub.beam.session import WriteSession
from rlds_hub.beam.sink import inherited_info
from rlds_hub.format.metadata import DatasetMetadata, JobProvenance
from rlds_hub.storage import dataset_files
from rlds_hub.storage.dataset import RLDSDataset, open_dataset
from rlds_hub.storage.episodes import dataset_layout
from rlds_hub.storage.query import select_splits
from rlds_hub.storage.selection import Selection


def input_selections(dataset: RLDSDataset, split: str | None) -> list[Selection]:
    """The selections ``split`` (TFDS syntax; None: every split, in dataset order) names."""
    if split is None:
        return [Selection(dataset, name) for name in dataset.splits]
    return select_splits(dataset, split)


def output_metadata(
    sources: Sequence[RLDSDataset], prov: JobProvenance, layout_name: str
) -> DatasetMetadata:
    """The output's ``metadata.json``: the (first) input's metadata, its layout, and this
    job's provenance (the input's own provenance kept as ``previous``)."""
    from rlds_hub._version import __version__

    metadata = sources[0].dataset_metadata if sources else DatasetMetadata()
    if metadata.provenance is not None and prov.previous is None:
        prov = dataclasses.replace(prov, previous=metadata.provenance)
    return dataclasses.replace(
        metadata,
        layout=layout_name,
        rlds_hub_version=metadata.rlds_hub_version or __version__,
        provenance=prov,
    )


def source_path(path: str | os.PathLike) -> str:
    """The path a provenance entry records: a local path made absolute, a URL as it is."""
    text = os.fspath(path)
    return text if "://" in text else os.path.abspath(text)


def rlds_sources(session: WriteSession, datasets: Sequence[RLDSDataset]) -> list[dict[str, Any]]:
    """Provenance entries of RLDS inputs: path, name, and the checksum of every shard read."""
    sums = read_source_checksums(session.sources)
    return [
        {
            "path": source_path(d.path),
            "format": "rlds",
            "name": d.name,
            "files": sums.get(d.path, {}),
        }
        for d in datasets
    ]


def run_rlds_job(
    *,
    job_name: str,
    arguments: dict[str, Any],
    datasets: Sequence[RLDSDataset],
    selections: Sequence[Sequence[Selection]],
    output: Output,
    run: Run,
    transform: Any | None,
    features_json: dict[str, Any],
    split_order: Sequence[str],
    layout_name: str | None = None,
    extra_metadata: dict[str, Any] | None = None,
    drop_metadata: Sequence[str] = (),
) -> dict[str, Any]:
    """Reads ``selections`` of each dataset, applies ``transform`` (a PTransform from
    EncodedEpisodes to EncodedEpisodes; None: none), writes ``output`` (name and file
    format default to the first input's) and commits it. The output's metadata is the first
    input's (:func:`output_metadata`) with the :class:`~rlds_hub.format.metadata.DatasetMetadata`
    fields ``extra_metadata`` set and those named in ``drop_metadata`` removed. Returns the summary of
    :func:`~rlds_hub.beam.sink.finish_dataset` plus ``seconds`` and ``input_episodes``."""
    import apache_beam as beam

    name = output.name or datasets[0].name
    file_format = output.file_format or datasets[0].file_format
    arguments = {
        **arguments,
        "output": output.path,
        "sharding": vars(output.sharding),
        "file_format": file_format,
        "name": name,
    }
    flags = run.flags()
    inputs = [d.path for d in datasets]
    with WriteSession(output.path, overwrite=output.overwrite, inputs=inputs) as session:
        dataset_files.check_dataset_name(name)
        # The bar counts the episodes read (a filter writes fewer than it reads).
        progress = session.pieces / "read"
        progress.mkdir()
        readers = [
            ReadEpisodes(sel, input_no=i, sources_dir=session.sources, progress_dir=progress)
            for i, sel in enumerate(selections)
        ]
        total = sum(r.num_episodes for r in readers)

        def build(pipeline: Any) -> None:
            streams = [pipeline | f"Read{i}" >> reader for i, reader in enumerate(readers)]
            episodes = streams[0] if len(streams) == 1 else tuple(streams) | beam.Flatten()
            if transform is not None:
                episodes = episodes | transform
            _ = episodes | session.write(
                name, file_format=file_format, sharding=output.sharding, split_order=split_order
            )

        seconds = session.run(
            flags, build, total=total, description=job_name, quiet=run.quiet, progress_dir=progress
        )
        prov = execution.provenance(job_name, arguments, rlds_sources(session, datasets), flags)
        layout_value = layout_name or dataset_layout(datasets[0])
        metadata = dataclasses.replace(
            output_metadata(datasets, prov, layout_value),
            **(extra_metadata or {}),
            **dict.fromkeys(drop_metadata),
        )
        metadata = dataclasses.replace(metadata, nulls=metadata.nulls - set(drop_metadata))
        summary = session.finish(
            name=name,
            features_json=features_json,
            metadata=metadata.to_json(),
            file_format=file_format,
            split_order=split_order,
            info=inherited_info(datasets[0].info),
        )
    summary["seconds"] = seconds
    summary["input_episodes"] = total
    return summary


def open_input(path: str | os.PathLike) -> RLDSDataset:
    return open_dataset(path)


def print_summary(job_name: str, summary: dict[str, Any], quiet: bool = False) -> None:
    splits = ", ".join(f"{n} {s}" for s, n in summary["splits"].items())
    rate = summary["steps"] / max(summary["seconds"], 1e-9)
    print(
        f"{job_name}: wrote {summary['path']} ({splits}; {summary['steps']:,} steps in "
        f"{summary['shards']} shards) in {summary['seconds']:.1f} s ({rate:,.0f} steps/s)"
    )
