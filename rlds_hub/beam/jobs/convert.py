"""convert: envlogger Riegeli logs, Minari datasets and D4RL-style HDF5 files to an RLDS
dataset, losslessly (features from the source's specs, bit-exact values, terminal vs
truncated kept)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam

from rlds_hub._version import __version__
from rlds_hub.beam import execution
from rlds_hub.beam.encoder import EpisodeEncoder
from rlds_hub.beam.jobs import common
from rlds_hub.beam.reading import read_source_checksums, write_source_checksum
from rlds_hub.beam.session import WriteSession
from rlds_hub.beam.sink import EncodedEpisode, Sharding
from rlds_hub.beam.sources import ConvertUnit, describe_source
from rlds_hub.format.features import IMAGE_ENCODINGS, episode_features
from rlds_hub.format.plan import Plan
from rlds_hub.format.specs import spec_to_json
from rlds_hub.storage import dataset_files

JOB = "convert"


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
    ):
        self._reader = reader
        self._features = features_json
        self._layout = layout_name
        self._split = split
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
                (*unit.key[:2], index), self._split, columns, where, source=source
            )
        if self._sources_dir:
            for path in unit.checksum:
                write_source_checksum(self._sources_dir, self._root, path)


def episode_part(root: str, part: str) -> str:
    """The part of a source an episode came from, relative to the source's path (the file
    name of a single-file source; "." for the source directory itself)."""
    if os.path.isfile(root):
        return os.path.basename(part)
    return os.path.relpath(part, root)


def convert(
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    source_format: str | None = None,
    split: str = "train",
    name: str | None = None,
    sharding: Sharding | None = None,
    file_format: str = "tfrecord",
    image_encoding: str = "png",
    overwrite: bool = False,
    beam_args: Sequence[str] | None = None,
    quiet: bool = True,
    **source_options: Any,
) -> dict[str, Any]:
    """Converts the source at ``input`` (format detected unless ``source_format``) into the
    RLDS dataset ``output`` (one split, ``split``)."""
    dataset_files.check_split_name(split)
    if image_encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"image_encoding must be one of {IMAGE_ENCODINGS}, got {image_encoding!r}")
    description = describe_source(input, source_format, **source_options)
    features_json = source_features(description, image_encoding)
    Plan.from_features_json(features_json)  # unsupported features fail before the pipeline
    name = name or dataset_files.dataset_name_from_path(_path_for_name(description.name))
    dataset_files.check_dataset_name(name)
    sharding = sharding or Sharding()
    flags = common.default_flags(beam_args)
    with WriteSession(output, overwrite=overwrite, inputs=[input]) as session:
        root = os.fspath(input)
        sources_dir = os.fspath(session.sources)

        def build(pipeline: Any) -> None:
            _ = (
                pipeline
                | "Units" >> beam.Create(description.units)
                | "SpreadUnits" >> beam.Reshuffle()
                | "Convert"
                >> beam.ParDo(
                    _ConvertUnit(
                        description.reader,
                        features_json,
                        description.layout,
                        split,
                        root,
                        sources_dir,
                    )
                )
                | session.write(
                    name, file_format=file_format, sharding=sharding, split_order=[split]
                )
            )

        seconds = session.run(
            flags, build, total=description.num_episodes, description=JOB, quiet=quiet
        )

        sums = read_source_checksums(session.sources).get(root, {})
        arguments = {
            "input": input,
            "output": output,
            "source_format": description.format,
            "split": split,
            "name": name,
            "sharding": vars(sharding),
            "file_format": file_format,
            "image_encoding": image_encoding,
            **source_options,
        }
        sources = [{"path": os.path.abspath(root), "format": description.format, "files": sums}]
        metadata = {
            "rlds_hub_version": __version__,
            "created": execution.now(),
            "env_name": description.metadata.get("env_name"),
            "specs": {
                "observation": spec_to_json(sorted_spec(description.observation_spec)),
                "action": spec_to_json(sorted_spec(description.action_spec)),
                "reward": spec_to_json(sorted_spec(description.reward_spec)),
                "discount": spec_to_json(sorted_spec(description.discount_spec)),
            },
            "image_encoding": image_encoding,
            "layout": description.layout,
            "source": {
                "format": description.format,
                "path": os.path.abspath(root),
                **description.metadata,
            },
            "provenance": execution.provenance(JOB, arguments, sources, flags),
        }
        text = (
            f"RLDS episodes converted from {description.format} data at "
            f"{os.path.abspath(root)} with rlds_hub {__version__}."
        )
        info, own = source_info(description.metadata.get("metadata"))
        summary = session.finish(
            name=name,
            features_json=features_json,
            metadata=metadata,
            file_format=file_format,
            split_order=[split],
            description=f"{own}\n\n{text}" if own else text,
            info=info,
        )

    summary["seconds"] = seconds
    summary["input_episodes"] = description.num_episodes
    summary["source_format"] = description.format
    return summary


def source_info(kept: Any) -> tuple[dict[str, Any], str]:
    """``dataset_info.json`` fields from a source's own metadata (Minari's code link as the
    homepage) and its description ("" if none)."""
    if not isinstance(kept, dict):
        return {}, ""
    info: dict[str, Any] = {}
    link = kept.get("code_permalink")
    if isinstance(link, str) and link:
        info["location"] = {"urls": [link]}
    own = kept.get("description")
    return info, own.strip() if isinstance(own, str) else ""


def sorted_spec(spec: Any) -> Any:
    """``spec`` with every dict's keys sorted: a source's dict order (envlogger decodes
    protobuf maps) must not change ``features.json`` from one run to the next."""
    if isinstance(spec, dict):
        return {key: sorted_spec(spec[key]) for key in sorted(spec)}
    if isinstance(spec, (tuple, list)):
        return type(spec)(sorted_spec(v) for v in spec)
    return spec


def source_features(description: Any, image_encoding: str = "png") -> dict[str, Any]:
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


def _path_for_name(name: str) -> Any:
    from pathlib import Path

    return Path(name)


def main(args: argparse.Namespace, flags: Sequence[str]) -> int:
    options = {}
    if args.episodes_per_unit is not None:
        if args.episodes_per_unit < 1:
            raise ValueError(f"--episodes-per-unit must be >= 1, got {args.episodes_per_unit}")
        options["episodes_per_unit"] = args.episodes_per_unit
    summary = convert(
        args.input,
        args.output,
        source_format=args.source_format,
        split=args.output_split,
        name=args.name,
        sharding=common.sharding_from_args(args),
        file_format=args.file_format,
        image_encoding=args.image_encoding,
        overwrite=args.overwrite,
        beam_args=flags,
        quiet=args.quiet,
        **options,
    )
    common.print_summary(JOB, summary)
    return 0
