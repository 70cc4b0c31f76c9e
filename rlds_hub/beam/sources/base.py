"""What every source format provides, and detecting the format of a path."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from rlds_hub.beam.sources import registry
from rlds_hub.storage import dataset_files


class SourceFormatError(dataset_files.DatasetError):
    """A source that cannot be read as the format asked for (the message names the file)."""


@dataclasses.dataclass(frozen=True)
class ConvertUnit:
    """Episodes ``[first, first + count)`` of one part of a source (a log directory, a
    file); ``checksum``: source files this unit checksums for the output's provenance."""

    key: tuple
    part: str
    first: int
    count: int
    checksum: tuple[str, ...] = ()


@dataclasses.dataclass
class SourceDescription:
    """A source, as the driver sees it before the pipeline runs."""

    format: str
    path: str
    observation_spec: Any
    action_spec: Any
    reward_spec: Any
    discount_spec: Any
    step_metadata_spec: dict[str, Any]
    episode_metadata_spec: dict[str, Any]
    layout: str
    units: list[ConvertUnit]
    metadata: dict[str, Any]
    name: str
    reader: Any  # a picklable object whose .episodes(unit) yields, per episode,
    # (episode number in the part, flat columns, "where" for errors)
    features_json: dict[str, Any] | None = None  # the output's features.json, when the
    # source stores it (a LeRobot export of an RLDS dataset); else derived from the specs
    splits: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)  # the
    # source's own splits: (name, first, stop) ranges of the reader's episode numbers
    splits_problem: str | None = None  # why the source's splits cannot be used (raised
    # only when the output keeps the source's splits)

    @property
    def num_episodes(self) -> int:
        return sum(u.count for u in self.units)


def even_ranges(count: int, per_unit: int) -> list[tuple[int, int]]:
    """``(start, length)`` of about ``per_unit`` items each, covering ``count`` items in
    ranges whose lengths differ by at most one (so workers get equal shares)."""
    if count <= 0:
        return []
    parts = -(-count // max(per_unit, 1))
    bounds = [i * count // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1] - bounds[i]) for i in range(parts)]


def detect_format(path: str | os.PathLike) -> str:
    """The format of ``path``: "envlogger" (a directory with Riegeli logs below it),
    "minari" (a Minari dataset directory), "d4rl" (an HDF5 file) or "lerobot" (a LeRobot
    dataset directory).

    Raises:
      SourceFormatError: none of them, saying what was found.
    """
    text = os.fspath(path)
    if not os.path.exists(text):
        raise SourceFormatError(f"{text} does not exist")
    for fmt in registry.formats():
        if registry.source_module(fmt).detect(text):
            return fmt
    if os.path.isfile(text):
        raise SourceFormatError(
            f"{text} is a file but not HDF5 (.hdf5/.h5); pass --source-format to say what it is"
        )
    raise SourceFormatError(
        f"{text} holds neither envlogger logs (a metadata.riegeli below it) nor a Minari "
        "dataset (data/metadata.json) nor a LeRobot dataset (meta/info.json); pass "
        "--source-format, or the path of an HDF5 file"
    )


def describe_source(
    path: str | os.PathLike, source_format: str | None = None, source_no: int = 0, **options: Any
) -> SourceDescription:
    """Describes the source at ``path`` (format detected unless given)."""
    fmt = source_format or detect_format(path)
    if fmt not in registry.formats():
        raise SourceFormatError(f"unknown source format {fmt!r}; use one of {registry.formats()}")
    return registry.source_module(fmt).describe(os.fspath(path), source_no=source_no, **options)
