"""Readers of other tools' episode formats for the convert job: envlogger Riegeli logs,
Minari datasets and D4RL-style HDF5 files. Each describes its source (specs, episodes, work
units) in the driver and reads the episodes of one unit, as flat NumPy columns, in a worker.

A format is one module here plus one ``registry.register`` line below (the order in which
formats are detected)."""

from rlds_hub.beam.sources import registry
from rlds_hub.beam.sources.base import (
    ConvertUnit,
    SourceDescription,
    SourceFormatError,
    describe_source,
    detect_format,
)

registry.register("envlogger", "rlds_hub.beam.sources.envlogger_source")
registry.register("minari", "rlds_hub.beam.sources.minari_source")
registry.register("d4rl", "rlds_hub.beam.sources.d4rl_source")
registry.register("lerobot", "rlds_hub.beam.sources.lerobot_source")
SOURCE_FORMATS = registry.formats()

__all__ = [
    "SOURCE_FORMATS",
    "ConvertUnit",
    "SourceDescription",
    "SourceFormatError",
    "describe_source",
    "detect_format",
]
