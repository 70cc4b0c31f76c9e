"""Apache Beam pipelines for RLDS datasets: reusable PTransforms and the batch jobs.

Building blocks (see docs/pipelines.md):

- :class:`~rlds_hub.beam.reading.ReadEpisodes`: the episodes of dataset selections, split
  into work units by shard and record range, read through the one reader.
- :class:`~rlds_hub.beam.session.WriteSession`: an RLDS dataset directory in TFDS layout,
  written shuffle-free (``session.write``: :class:`~rlds_hub.beam.sink.WriteDataset`) into
  a staging directory and committed atomically (``session.finish``:
  :func:`~rlds_hub.beam.sink.finish_dataset`), or deleted if the ``with`` block fails.
- :class:`~rlds_hub.beam.encoder.EpisodeEncoder`: flat NumPy episodes to encoded ones.
- :class:`~rlds_hub.beam.transforms.FilterEpisodes`, :class:`~rlds_hub.beam.transforms.MapEpisodes`
  (with :class:`~rlds_hub.beam.selection.EpisodeFilter`), :func:`~rlds_hub.beam.selection.assign_split`.
- :class:`~rlds_hub.beam.quantiles.QuantileSketch`: mergeable quantiles for statistics.

Jobs: :mod:`rlds_hub.beam.jobs` (convert, reshard, filter, map, merge, split, stats, export),
also ``rlds-hub <job>`` and ``python -m pipelines.<job>``. Names load on first use, so
importing this package (as the CLI does) does not import Beam; using them needs the ``beam``
extra (``pip install 'rlds-hub[beam]'``), and a missing one is a
:class:`~rlds_hub.extras.MissingExtraError` that says so.
"""

from __future__ import annotations

from typing import Any

from rlds_hub.extras import require

_EXPORTS = {
    "ReadEpisodes": "rlds_hub.beam.reading",
    "record_units": "rlds_hub.beam.reading",
    "WriteDataset": "rlds_hub.beam.sink",
    "EncodedEpisode": "rlds_hub.beam.sink",
    "Sharding": "rlds_hub.beam.sink",
    "finish_dataset": "rlds_hub.beam.sink",
    "Staging": "rlds_hub.beam.staging",
    "WriteSession": "rlds_hub.beam.session",
    "EpisodeEncoder": "rlds_hub.beam.encoder",
    "EpisodeFilter": "rlds_hub.beam.selection",
    "assign_split": "rlds_hub.beam.selection",
    "QuantileSketch": "rlds_hub.beam.quantiles",
    "FilterEpisodes": "rlds_hub.beam.transforms",
    "MapEpisodes": "rlds_hub.beam.transforms",
    "convert": "rlds_hub.beam.jobs.convert",
    "reshard": "rlds_hub.beam.jobs.reshard",
    "filter_dataset": "rlds_hub.beam.jobs.filter",
    "map_dataset": "rlds_hub.beam.jobs.map",
    "merge": "rlds_hub.beam.jobs.merge",
    "split_dataset": "rlds_hub.beam.jobs.split",
    "compute_statistics": "rlds_hub.beam.jobs.stats",
    "export": "rlds_hub.beam.jobs.export",
    "record_dataset": "rlds_hub.beam.recording",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(require(_EXPORTS[name], "beam", f"rlds_hub.beam.{name}"), name)
    raise AttributeError(f"module 'rlds_hub.beam' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
