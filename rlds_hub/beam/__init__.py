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
- The jobs' data-parallel parts: :class:`~rlds_hub.beam.converting.ConvertSource`,
  :class:`~rlds_hub.beam.recording.RecordEpisodes`,
  :class:`~rlds_hub.beam.statistics.ComputeStatistics`,
  :class:`~rlds_hub.beam.parquet.ExportParquet`, :class:`~rlds_hub.beam.transforms.AssignSplits`.
- :class:`~rlds_hub.beam.quantiles.QuantileSketch`: mergeable quantiles for statistics.

Jobs: :mod:`rlds_hub.beam.jobs` (convert, reshard, filter, map, merge, split, stats, export),
each taking an :class:`~rlds_hub.beam.job_values.Output` and a
:class:`~rlds_hub.beam.job_values.Run`; also ``rlds-hub <job>`` and
``python -m rlds_hub.pipelines.<job>``. Names load on first use, so
importing this package (as the CLI does) does not import Beam; using them needs the ``beam``
extra (``pip install 'rlds-hub[beam]'``), and a missing one is a
:class:`~rlds_hub.extras.MissingExtraError` that says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlds_hub import _lazy
from rlds_hub.extras import require

if TYPE_CHECKING:
    from rlds_hub.beam.converting import ConvertSource as ConvertSource
    from rlds_hub.beam.encoder import EpisodeEncoder as EpisodeEncoder
    from rlds_hub.beam.job_values import Output as Output
    from rlds_hub.beam.job_values import Run as Run
    from rlds_hub.beam.jobs.convert import convert as convert
    from rlds_hub.beam.jobs.export import export as export
    from rlds_hub.beam.jobs.filter import filter_dataset as filter_dataset
    from rlds_hub.beam.jobs.map import map_dataset as map_dataset
    from rlds_hub.beam.jobs.merge import merge as merge
    from rlds_hub.beam.jobs.reshard import reshard as reshard
    from rlds_hub.beam.jobs.split import split_dataset as split_dataset
    from rlds_hub.beam.jobs.stats import compute_statistics as compute_statistics
    from rlds_hub.beam.parquet import ExportParquet as ExportParquet
    from rlds_hub.beam.quantiles import QuantileSketch as QuantileSketch
    from rlds_hub.beam.reading import ReadEpisodes as ReadEpisodes
    from rlds_hub.beam.reading import record_units as record_units
    from rlds_hub.beam.recording import RecordEpisodes as RecordEpisodes
    from rlds_hub.beam.recording import record_dataset as record_dataset
    from rlds_hub.beam.selection import EpisodeFilter as EpisodeFilter
    from rlds_hub.beam.selection import assign_split as assign_split
    from rlds_hub.beam.session import WriteSession as WriteSession
    from rlds_hub.beam.sink import (
        EncodedEpisode as EncodedEpisode,
    )
    from rlds_hub.beam.sink import (
        Sharding as Sharding,
    )
    from rlds_hub.beam.sink import (
        WriteDataset as WriteDataset,
    )
    from rlds_hub.beam.sink import (
        finish_dataset as finish_dataset,
    )
    from rlds_hub.beam.staging import Staging as Staging
    from rlds_hub.beam.statistics import ComputeStatistics as ComputeStatistics
    from rlds_hub.beam.transforms import AssignSplits as AssignSplits
    from rlds_hub.beam.transforms import (
        FilterEpisodes as FilterEpisodes,
    )
    from rlds_hub.beam.transforms import (
        MapEpisodes as MapEpisodes,
    )

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
    "Output": "rlds_hub.beam.job_values",
    "Run": "rlds_hub.beam.job_values",
    "ConvertSource": "rlds_hub.beam.converting",
    "RecordEpisodes": "rlds_hub.beam.recording",
    "ComputeStatistics": "rlds_hub.beam.statistics",
    "ExportParquet": "rlds_hub.beam.parquet",
    "AssignSplits": "rlds_hub.beam.transforms",
}
__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    _EXPORTS,
    importer=lambda module, name: require(module, "beam", f"rlds_hub.beam.{name}"),
)
