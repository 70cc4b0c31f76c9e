"""export: a dataset's steps and episodes as Parquet tables (pyarrow), for DuckDB, pandas,
Polars and Spark users; or, with ``format="lerobot"``, as a LeRobot v3.0 dataset (see
:func:`export_lerobot`).

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
import math
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
from rlds_hub.storage.episodes import dataset_layout

JOB = "export"


def export(
    input: str | os.PathLike,
    output: Output | str | os.PathLike,
    *,
    split: str | None = None,
    run: Run | None = None,
    format: str = "parquet",
    **lerobot: Any,
) -> dict[str, Any]:
    """Exports ``input`` (its ``split`` selection, default every split) to Parquet tables in
    ``output`` (see the module docstring; only its path and ``overwrite`` apply), or with
    ``format="lerobot"`` to a LeRobot dataset (``lerobot``: :func:`export_lerobot`'s options).
    """
    if format == "lerobot":
        return export_lerobot(input, output, split=split, run=run, **lerobot)
    if format != "parquet":
        raise ValueError(f"unknown export format {format!r}: choose parquet or lerobot")
    if lerobot:
        raise ValueError(f"{sorted(lerobot)} apply only to format='lerobot'")
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
                "path": common.source_path(dataset.path),
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


def export_lerobot(
    input: str | os.PathLike,
    output: Output | str | os.PathLike,
    *,
    split: str | None = None,
    run: Run | None = None,
    video_codec: str = "av1",
    fps: int | None = None,
    skip_unsupported: bool = False,
    task: str | None = None,
    robot_type: str | None = None,
    data_file_mb: float | None = None,
    video_file_mb: float | None = None,
) -> dict[str, Any]:
    """Exports ``input`` to a LeRobot v3.0 dataset in ``output`` that LeRobot's
    ``LeRobotDataset(repo_id, root=output)`` loads.

    Steps become frames one to one (the features' names: :func:`rlds_hub.lerobot.layout.
    feature_map`); cameras become MP4 video (``video_codec`` ``av1`` or ``h264``; their PSNR
    and SSIM go into ``export.json``) or PNG frames in the Parquet (``none``: lossless).
    ``fps`` (the control rate, which RLDS does not record) defaults to the dataset
    metadata's ``fps`` (rlds_hub's recorder stores the environment's control rate), then
    its ``source.fps`` (a dataset converted from LeRobot); ``task`` is every frame's task
    when the steps have no ``language_instruction``-like string (default: the dataset's name).
    ``data_file_mb`` / ``video_file_mb``: the files' size caps (default LeRobot's: 100, 200).

    Raises:
      UnsupportedFeatureError: step fields LeRobot cannot hold (unless ``skip_unsupported``).
      ValueError: no ``fps``, an unknown codec, an empty episode; EncodingError: frames the
        codec cannot encode; MissingExtraError: no PyAV (the ``lerobot`` extra). Nothing is
        written then.
    """
    from rlds_hub.beam.lerobot import ExportLeRobot, unit_specs
    from rlds_hub.lerobot import encoding, layout, writing

    output, run = Output.of(output), Run.of(run)
    output.refuse(JOB, "sharding", "file_format", "name", "image_encoding")
    if video_codec not in layout.VIDEO_CODECS:
        raise ValueError(
            f"unknown video codec {video_codec!r}: choose one of {layout.VIDEO_CODECS}"
        )
    dataset = open_dataset(input)
    extra = dataset.dataset_metadata.extra
    fps = _lerobot_fps(dataset, fps)
    features = layout.feature_map(dataset.plan, skip_unsupported=skip_unsupported)
    if video_codec != "none":
        encoding.check_codec(video_codec)
        for camera in features.cameras:
            encoding.check_frame_size(video_codec, *camera.leaf.shape[:2], camera.leaf.name)
    selections = common.input_selections(dataset, split)
    lengths, tasks, episode_metadata = _lerobot_prepass(dataset, selections, features)
    default_task = task or dataset.name
    if not tasks:
        tasks = {default_task: 0}
    caps = {"data_file_mb": data_file_mb, "video_file_mb": video_file_mb}
    plan = writing.ExportPlan(
        video_codec,
        int(fps),
        skip_unsupported,
        tasks,
        default_task,
        **{key: value for key, value in caps.items() if value is not None},
    )
    specs, checksums = unit_specs(selections, lengths)
    flags = run.flags()
    with WriteSession(output.path, overwrite=output.overwrite, inputs=[input]) as session:
        transform = ExportLeRobot(
            specs,
            session.path,
            plan,
            checksums=checksums,
            sources_dir=session.sources,
            progress_dir=session.pieces,
        )

        def build(pipeline: Any) -> None:
            _ = pipeline | "ExportLeRobot" >> transform

        seconds = session.run(
            flags,
            build,
            total=sum(len(s.indices) for s in specs),
            description=JOB,
            quiet=run.quiet,
        )
        units_dir = session.path / writing.UNITS_DIR
        units = [json.loads(p.read_text()) for p in sorted(units_dir.glob("u*.json"))]
        if len(units) != len(specs):
            raise RuntimeError(
                f"the pipeline finished but {len(units)} of {len(specs)} units wrote their "
                "files; nothing was committed"
            )
        splits, first = {}, 0
        for selection in selections:
            splits[selection.split] = f"{first}:{first + selection.num_episodes}"
            first += selection.num_episodes
        written = writing.finish(
            session.path,
            dataset,
            units,
            plan,
            splits=splits,
            robot_type=robot_type or extra.get("robot_type"),
            rlds_layout=dataset_layout(dataset),
            episode_metadata=episode_metadata,
        )
        files = {
            os.path.relpath(path, session.path): file_checksum(path)
            for path in sorted(session.path.rglob("*"))
            if path.is_file() and not path.name.startswith(".")
        }
        sources = [
            {
                "path": common.source_path(dataset.path),
                "format": "rlds",
                "name": dataset.name,
                "files": read_source_checksums(session.sources).get(dataset.path, {}),
            }
        ]
        arguments = {
            "input": input,
            "output": output.path,
            "split": split,
            "format": "lerobot",
            "video_codec": video_codec,
            "fps": fps,
            "skip_unsupported": skip_unsupported,
            "task": task,
        }
        marker = {
            "format": "lerobot",
            "codebase_version": layout.CODEBASE_VERSION,
            "dataset": dataset.name,
            "video_codec": video_codec,
            "fps": int(fps),
            "frames": written["frames"],
            "episodes": written["episodes"],
            "tasks": written["tasks"],
            "video_quality": written["quality"],
            "skipped": written["skipped"],
            "splits": splits,
            "files": files,
            "provenance": execution.provenance(JOB, arguments, sources, flags).to_json(),
        }
        (session.path / EXPORT_MARKER).write_text(json.dumps(marker, indent=1))
        path = session.commit()
    return {
        "path": os.fspath(path),
        "parts": len(specs),
        "episodes": written["episodes"],
        "frames": written["frames"],
        "video_quality": written["quality"],
        "skipped": written["skipped"],
        "seconds": seconds,
    }


def _lerobot_fps(dataset: Any, fps: Any) -> int:
    """The frame rate: ``fps`` when given, else ``metadata.json``'s ``fps`` (the control rate
    rlds_hub's recorder stores when the environment says it), else its ``source.fps`` (a
    dataset converted from LeRobot). ValueError naming ``--fps`` when none is a positive
    whole number."""
    metadata = dataset.dataset_metadata
    source = metadata.source.extra if metadata.source is not None else {}
    if fps is not None:
        where = "--fps"
    elif metadata.extra.get("fps") is not None:
        fps, where = metadata.extra["fps"], "metadata.json's fps (the control rate)"
    elif source.get("fps") is not None:
        fps, where = source["fps"], "metadata.json's source.fps"
    else:
        raise ValueError(
            f"{dataset.path}: give the frame rate with --fps (frames per second, a positive "
            "whole number): the dataset's metadata.json has no fps (rlds_hub's recorder stores "
            "the environment's control rate when the environment gives it, e.g. dm_control's "
            "control_timestep or a Gymnasium env's dt)"
        )
    number = isinstance(fps, (int, float)) and not isinstance(fps, bool)
    whole = number and math.isfinite(fps) and fps == int(fps)
    if not whole or fps <= 0:
        raise ValueError(
            f"{dataset.path}: {where} is {fps!r}, but LeRobot needs a positive whole number of "
            "frames per second; give one with --fps"
        )
    return int(fps)


def _lerobot_prepass(
    dataset: Any, selections: Sequence[Any], features: Any
) -> tuple[dict[str, list[int]], dict[str, int], list[dict[str, Any]]]:
    """Each split's episode lengths, the tasks (text -> index, in order of appearance) and
    each episode's metadata (JSON values), from ``episodes.jsonl`` when it holds all that
    is needed, else from one read of only the task and episode fields."""
    from rlds_hub.storage.episodes import episode_table
    from rlds_hub.storage.reader import iter_batches

    keys = [leaf.key for leaf in dataset.plan.episode_leaves]
    if features.task_leaf is not None:
        keys.append(features.task_leaf.key)
    lengths: dict[str, list[int]] = {}
    tasks: dict[str, int] = {}
    metadata: list[dict[str, Any]] = []
    for selection in selections:
        if not keys:
            rows = episode_table(dataset, selection.split)
            lengths[selection.split] = [int(r["num_steps"]) for r in rows]
            metadata += [
                {"split": selection.split, "episode": int(r["episode"]), "metadata": {}}
                for r in rows
            ]
            continue
        split_lengths = [0] * dataset.split(selection.split).num_episodes
        for batch in iter_batches(selection, keys=keys):
            for i, episode in enumerate(batch.episodes.tolist()):
                split_lengths[episode] = int(batch.num_steps[i])
            if features.task_leaf is not None:
                for text in batch.arrays[features.task_leaf.key]:
                    text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
                    tasks.setdefault(text, len(tasks))
            for i, episode in enumerate(batch.episodes.tolist()):
                values = {
                    leaf.name: _json_value(batch.arrays[leaf.key][i])
                    for leaf in dataset.plan.episode_leaves
                }
                metadata.append({"split": selection.split, "episode": episode, "metadata": values})
        lengths[selection.split] = split_lengths
    wanted = {(s.split, i) for s in selections for i in _selected(s)}
    metadata = [m for m in metadata if (m["split"], m["episode"]) in wanted]
    return lengths, tasks, metadata


def _selected(selection: Any) -> list[int]:
    indices = getattr(selection, "indices", None)
    if indices is None:
        return list(range(selection.dataset.split(selection.split).num_episodes))
    return list(indices)


def _json_value(value: Any) -> Any:
    import numpy as np

    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    array = np.asarray(value)
    if array.dtype == object:
        return [_json_value(v) for v in array.tolist()]
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        return {"dtype": array.dtype.name, "hex": array.tobytes().hex(), "shape": list(array.shape)}
    return array.tolist()


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
    run = Run(beam_args=flags, quiet=args.quiet)
    output = Output(args.output, overwrite=args.overwrite)
    if getattr(args, "format", "parquet") == "lerobot":
        summary = export_lerobot(
            args.input,
            output,
            split=args.split,
            run=run,
            video_codec=args.video_codec,
            fps=args.fps,
            skip_unsupported=args.skip_unsupported,
            task=args.task,
            robot_type=args.robot_type,
        )
        quality = "".join(
            f"; {key}: PSNR {q['psnr_mean_db']:.1f} dB (min {q['psnr_min_db']:.1f}), "
            f"SSIM {q['ssim_mean']:.3f}"
            for key, q in summary["video_quality"].items()
        )
        skipped = f"; skipped {sorted(summary['skipped'])}" if summary["skipped"] else ""
        print(
            f"export: wrote {summary['episodes']} episodes ({summary['frames']} frames) as a "
            f"LeRobot dataset to {summary['path']} in {summary['seconds']:.1f} s{quality}{skipped}"
        )
        return 0
    given = {
        "--video-codec": args.video_codec != "av1",
        "--fps": args.fps is not None,
        "--skip-unsupported": args.skip_unsupported,
        "--task": args.task is not None,
        "--robot-type": args.robot_type is not None,
    }
    if any(given.values()):
        names = ", ".join(name for name, set_ in given.items() if set_)
        raise ValueError(f"{names} apply only to --format lerobot (add it, or leave them out)")
    summary = export(args.input, output, split=args.split, run=run)
    print(
        f"export: wrote {summary['episodes']} episodes to {summary['path']} "
        f"({summary['parts']} parts each of steps/ and episodes/) in "
        f"{summary['seconds']:.1f} s"
    )
    return 0
