"""Readers of other tools' episode formats for the convert job: envlogger Riegeli logs,
Minari datasets and D4RL-style HDF5 files. Each describes its source (specs, episodes, work
units) in the driver and reads the episodes of one unit, as flat NumPy columns, in a worker."""

from rlds_hub.beam.sources.base import (
    SOURCE_FORMATS,
    ConvertUnit,
    SourceDescription,
    SourceFormatError,
    describe_source,
    detect_format,
    reader_for,
)

__all__ = [
    "SOURCE_FORMATS",
    "ConvertUnit",
    "SourceDescription",
    "SourceFormatError",
    "describe_source",
    "detect_format",
    "reader_for",
]
