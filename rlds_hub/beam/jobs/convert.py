"""convert: envlogger Riegeli logs, Minari datasets, D4RL-style HDF5 files and LeRobot v3.0
datasets to an RLDS dataset, losslessly (features from the source's specs, bit-exact values,
terminal vs truncated kept)."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlds_hub._version import __version__
from rlds_hub.beam import execution
from rlds_hub.beam.converting import ConvertSource, sorted_spec
from rlds_hub.beam.job_values import Output, Run, output_from_args
from rlds_hub.beam.jobs import common
from rlds_hub.beam.reading import read_source_checksums
from rlds_hub.beam.session import WriteSession
from rlds_hub.format.metadata import DatasetMetadata, Session, Source, env_specs_json
from rlds_hub.storage import dataset_files

JOB = "convert"


def convert(
    input: str | os.PathLike,
    output: Output | str | os.PathLike,
    *,
    source_format: str | None = None,
    split: str | None = None,
    fps: float | None = None,
    run: Run | None = None,
    **source_options: Any,
) -> dict[str, Any]:
    """Converts the source at ``input`` (format detected unless ``source_format``) into the
    RLDS dataset ``output`` (every episode in ``split``; by default the source's own splits,
    a LeRobot dataset's ``meta/info.json`` ``splits``, else "train"; file format default
    ``tfrecord``, name default from the source's path). ``metadata.json``'s ``fps`` is the
    control rate the source records (a LeRobot dataset's fps, a Riegeli log's recorded
    rate), else ``fps``; a given ``fps`` that disagrees with the source's is refused."""
    output, run = Output.of(output), Run.of(run)
    if fps is not None:
        fps = _checked_fps(fps)
    if split is not None:
        dataset_files.check_split_name(split)
    file_format = output.file_format or "tfrecord"
    image_encoding = output.image_encoding or "png"
    flags = run.flags()
    with WriteSession(output.path, overwrite=output.overwrite, inputs=[input]) as session:
        source = ConvertSource(
            input,
            source_format=source_format,
            split=split,
            image_encoding=image_encoding,
            sources_dir=session.sources,
            **source_options,
        )
        description = source.description
        rate = _rate(description.metadata.get("fps"), fps, description.format)
        name = output.name or dataset_files.dataset_name_from_path(Path(description.name))
        dataset_files.check_dataset_name(name)

        def build(pipeline: Any) -> None:
            _ = (
                pipeline
                | "ConvertSource" >> source
                | session.write(
                    name,
                    file_format=file_format,
                    sharding=output.sharding,
                    split_order=source.split_order,
                )
            )

        seconds = session.run(
            flags, build, total=source.num_episodes, description=JOB, quiet=run.quiet
        )

        root = source.root
        sums = read_source_checksums(session.sources).get(root, {})
        arguments = {
            "input": input,
            "output": output.path,
            "source_format": description.format,
            "split": split,
            "name": name,
            "sharding": vars(output.sharding),
            "file_format": file_format,
            "image_encoding": image_encoding,
            **({} if fps is None else {"fps": fps}),
            **source_options,
        }
        sources = [{"path": os.path.abspath(root), "format": description.format, "files": sums}]
        recorded = description.metadata  # what a recorder said (Riegeli: policy, seed, sessions)
        metadata = DatasetMetadata(
            rlds_hub_version=__version__,
            created=execution.now(),
            env_name=recorded.get("env_name"),
            policy=recorded.get("policy"),
            seed=recorded.get("seed"),
            sessions=tuple(
                Session.from_json(s, f"sessions[{i}]")
                for i, s in enumerate(recorded.get("sessions") or ())
            )
            or None,
            specs=env_specs_json(
                sorted_spec(description.observation_spec),
                sorted_spec(description.action_spec),
                sorted_spec(description.reward_spec),
                sorted_spec(description.discount_spec),
            ),
            image_encoding=image_encoding,
            layout=description.layout,
            source=Source.from_json(
                {"format": description.format, "path": os.path.abspath(root), **recorded},
                "source",
            ),
            provenance=execution.provenance(JOB, arguments, sources, flags),
            extra={} if rate is None else {"fps": rate},
        )
        text = (
            f"RLDS episodes converted from {description.format} data at "
            f"{os.path.abspath(root)} with rlds_hub {__version__}."
        )
        info, own = source_info(description.metadata.get("metadata"))
        summary = session.finish(
            name=name,
            features_json=source.features_json,
            metadata=metadata.to_json(),
            file_format=file_format,
            split_order=source.split_order,
            description=f"{own}\n\n{text}" if own else text,
            info=info,
        )

    summary["seconds"] = seconds
    summary["input_episodes"] = description.num_episodes
    summary["source_format"] = description.format
    return summary


def _checked_fps(fps: Any) -> float:
    """A given control rate: a positive finite number (whole rates as ``int``)."""
    number = isinstance(fps, (int, float)) and not isinstance(fps, bool)
    if not number or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"--fps must be a positive number of steps per second, got {fps!r}")
    return int(fps) if fps == int(fps) else float(fps)


def _rate(recorded: Any, given: float | None, source_format: str) -> float | None:
    """The output's ``fps``: the source's recorded rate, else the given one."""
    if recorded is None or given is None:
        return given if recorded is None else recorded
    if float(recorded) != float(given):
        raise ValueError(
            f"--fps {given} disagrees with the {source_format} source's own rate of {recorded} "
            "steps per second; leave --fps out to keep the recorded rate"
        )
    return recorded


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


def main(args: argparse.Namespace, flags: Sequence[str]) -> int:
    options = {}
    if args.episodes_per_unit is not None:
        if args.episodes_per_unit < 1:
            raise ValueError(f"--episodes-per-unit must be >= 1, got {args.episodes_per_unit}")
        options["episodes_per_unit"] = args.episodes_per_unit
    summary = convert(
        args.input,
        output_from_args(args),
        source_format=args.source_format,
        split=args.output_split,
        fps=args.fps,
        run=Run(beam_args=flags, quiet=args.quiet),
        **options,
    )
    common.print_summary(JOB, summary)
    return 0
