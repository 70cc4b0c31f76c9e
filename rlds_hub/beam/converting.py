"""``ConvertSource``: the episodes of an envlogger, Minari, D4RL or LeRobot source as encoded
RLDS episodes, for the convert job and users' own pipelines (features from the source's specs,
values bit-exact, terminal vs truncated kept)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from rlds_hub.beam.encoder import EpisodeEncoder
from rlds_hub.beam.reading import write_source_checksum
from rlds_hub.beam.sink import EncodedEpisode
from rlds_hub.beam.sources import ConvertUnit, SourceDescription, describe_source
from rlds_hub.beam.sources.base import SourceFormatError
from rlds_hub.format.features import IMAGE_ENCODINGS, episode_features
from rlds_hub.format.plan import Plan
from rlds_hub.storage import dataset_files


class _ConvertUnit(beam.DoFn):
    """Reads one unit of the source and encodes its episodes."""

    def __init__(
        self,
        reader: Any,
        features_json: dict[str, Any],
        layout_name: str,
        split: str,
        root: str,
        sources_dir: str | None,
        splits: list[tuple[str, int, int]] | None = None,
    ):
        self._reader = reader
        self._features = features_json
        self._layout = layout_name
        self._split = split
        self._splits = list(splits or ())
        self._root = root
        self._sources_dir = sources_dir

    def setup(self) -> None:
        self._encoder = EpisodeEncoder(self._features, self._layout)
        if hasattr(self._reader, "bind"):
            self._reader.bind(self._encoder.plan)

    def process(self, unit: ConvertUnit) -> Iterator[EncodedEpisode]:
        part = episode_part(self._root, unit.part)
        origin = getattr(self._reader, "origin", None)
        for index, columns, where in self._reader.episodes(unit):
            source = {"path": part, "episode": index, **(origin(index) if origin else {})}
            yield self._encoder.encode(
                (*unit.key[:2], index), self._split_of(index), columns, where, source=source
            )
        if self._sources_dir:
            for path in unit.checksum:
                write_source_checksum(self._sources_dir, self._root, path)

    def _split_of(self, index: int) -> str:
        for name, first, stop in self._splits:
            if first <= index < stop:
                return name
        return self._split


class ConvertSource(beam.PTransform):
    """Reads a source (envlogger Riegeli logs, a Minari dataset, a D4RL-style HDF5 file, a
    LeRobot dataset) as ``EncodedEpisode`` s of one split (or of the source's own splits),
    keyed ``(source, part, episode)``, work unit by work unit (a range of episodes of one log
    directory or file)::

        convert = ConvertSource("logs/", split="train")
        pipeline | convert | session.write(name)  # then finish with convert.features_json

    The source is described (format detected unless ``source_format``, specs, units) when the
    transform is made, so a bad source fails before any pipeline runs.

    Args:
      input: the source's path.
      source_format: one of :data:`~rlds_hub.beam.sources.SOURCE_FORMATS` (default: detected).
      split: the split every episode goes to; None (the default): the source's own splits
        when it has them (a LeRobot dataset's ``meta/info.json`` ``splits``), else "train".
      image_encoding: how uint8 image observations are stored (``png`` or ``raw``).
      sources_dir: where units record the checksums of the source files they read.
      source_options: the source format's own options (``episodes_per_unit``).
    """

    def __init__(
        self,
        input: str | os.PathLike,
        *,
        source_format: str | None = None,
        split: str | None = None,
        image_encoding: str = "png",
        sources_dir: str | os.PathLike | None = None,
        **source_options: Any,
    ):
        super().__init__()
        if split is not None:
            dataset_files.check_split_name(split)
        if image_encoding not in IMAGE_ENCODINGS:
            raise ValueError(
                f"image_encoding must be one of {IMAGE_ENCODINGS}, got {image_encoding!r}"
            )
        self.root = os.fspath(input)
        self.image_encoding = image_encoding
        self.description: SourceDescription = describe_source(
            input, source_format, **source_options
        )
        if split is None and self.description.splits_problem:
            raise SourceFormatError(self.description.splits_problem)
        #: (name, first, stop) episode ranges of the source's splits kept in the output
        self.splits = list(self.description.splits) if split is None else []
        self.split = split or "train"  # every episode outside self.splits
        #: the output's splits in the source's order
        self.split_order = list(dict.fromkeys(n for n, _, _ in self.splits)) or [self.split]
        self.features_json = self.description.features_json or source_features(
            self.description, image_encoding
        )
        Plan.from_features_json(self.features_json)  # unsupported features fail here
        self._sources_dir = os.fspath(sources_dir) if sources_dir is not None else None

    @property
    def num_episodes(self) -> int:
        return self.description.num_episodes

    def expand(self, pbegin: Any) -> Any:
        description = self.description
        return (
            pbegin
            | "Units" >> beam.Create(description.units)
            | "SpreadUnits" >> beam.Reshuffle()
            | "Convert"
            >> beam.ParDo(
                _ConvertUnit(
                    description.reader,
                    self.features_json,
                    description.layout,
                    self.split,
                    self.root,
                    self._sources_dir,
                    self.splits,
                )
            )
        )


def episode_part(root: str, part: str) -> str:
    """The part of a source an episode came from, relative to the source's path (the file
    name of a single-file source; "." for the source directory itself)."""
    if os.path.isfile(root):
        return os.path.basename(part)
    return os.path.relpath(part, root)


def sorted_spec(spec: Any) -> Any:
    """``spec`` with every dict's keys sorted: a source's dict order (envlogger decodes
    protobuf maps) must not change ``features.json`` from one run to the next."""
    if isinstance(spec, dict):
        return {key: sorted_spec(spec[key]) for key in sorted(spec)}
    if isinstance(spec, (tuple, list)):
        return type(spec)(sorted_spec(v) for v in spec)
    return spec


def source_features(description: SourceDescription, image_encoding: str = "png") -> dict[str, Any]:
    """The output features of a described source (dict keys in sorted order)."""
    return episode_features(
        observation_spec=sorted_spec(description.observation_spec),
        action_spec=sorted_spec(description.action_spec),
        reward_spec=sorted_spec(description.reward_spec),
        discount_spec=sorted_spec(description.discount_spec),
        step_metadata_spec=sorted_spec(description.step_metadata_spec),
        episode_metadata_spec=sorted_spec(description.episode_metadata_spec),
        image_encoding=image_encoding,
    )
