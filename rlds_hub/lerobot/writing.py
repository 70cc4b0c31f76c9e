"""Writing a LeRobot v3.0 dataset from an RLDS dataset: the work of one unit of episodes
(:func:`write_unit`, run in parallel by the export job) and the dataset's metadata from the
units' results (:func:`finish`).

A unit writes its frames to Parquet files and its cameras to MP4 files (or PNG in the
Parquet with ``video_codec="none"``: the stored bytes of a PNG frame, unchanged), cutting a
new file before LeRobot's size caps; files get temporary names under ``.tmp-units/`` and a
JSON summary of the unit (its episodes' rows and statistics, the frames' PSNR and SSIM).
:func:`finish` numbers the files in unit order (``chunk-CCC/file-FFF``), writes
``meta/episodes``, ``meta/tasks.parquet``, ``meta/stats.json``, ``meta/info.json`` and
``meta/rlds_hub.json``, and removes ``.tmp-units/``. Steps are frames one to one; ``index`` and
``episode_index`` are global, in unit order.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlds_hub.format.decode import NUM_STEPS, EpisodeDecoder
from rlds_hub.format.images import decode_image, encode_png
from rlds_hub.format.plan import Leaf, LeafKind
from rlds_hub.lerobot import encoding, layout, stats
from rlds_hub.storage.dataset import RLDSDataset
from rlds_hub.storage.reader import decode_records, iter_records
from rlds_hub.storage.selection import Selection

UNITS_DIR = ".tmp-units"
QUALITY_FRAMES = 8  # frames per episode and camera whose PSNR / SSIM export.json reports
_MB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ExportPlan:
    """What every unit needs to know: the features, the codec, the rate, the tasks."""

    video_codec: str
    fps: int
    skip_unsupported: bool
    tasks: dict[str, int]  # task text -> task_index
    default_task: str  # the task of datasets without a language field
    data_file_mb: float = layout.DATA_FILE_MB
    video_file_mb: float = layout.VIDEO_FILE_MB


@dataclasses.dataclass(frozen=True)
class UnitSpec:
    """Episodes ``indices`` of ``split`` of the dataset at ``path``: LeRobot episodes from
    ``first_episode``, frames from ``first_frame``."""

    number: int
    path: str
    split: str
    indices: tuple[int, ...]
    first_episode: int
    first_frame: int


def _stored(leaf: Leaf) -> Leaf:
    """A camera leaf decoded as its stored bytes (one PNG or JPEG per step) if it is
    encoded frames, else as it is (raw pixels)."""
    if leaf.kind != LeafKind.IMAGE:
        return leaf
    return dataclasses.replace(leaf, kind=LeafKind.STRING, dtype=np.dtype(object), shape=())


class _FileRoller:
    """Numbers a unit's files of one kind and cuts a new one past the cap."""

    def __init__(self, directory: Path, stem: str, suffix: str, cap_mb: float):
        self.directory, self.stem, self.suffix, self.cap = directory, stem, suffix, cap_mb * _MB
        self.files: list[str] = []

    def new(self) -> Path:
        name = f"{self.stem}-{len(self.files):04d}{self.suffix}"
        self.files.append(name)
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / name


def _pixels(value: Any, leaf: Leaf) -> np.ndarray:
    """A camera's frame: stored PNG / JPEG bytes decoded, raw pixels as they are."""
    if isinstance(value, bytes):
        return decode_image(value, leaf)
    return np.asarray(value, np.uint8)


class _UnitWriter:
    """The state of one unit's writing (see :func:`write_unit`)."""

    def __init__(self, out: Path, spec: UnitSpec, plan: ExportPlan, features: layout.FeatureMap):
        self.out, self.spec, self.plan, self.features = out, spec, plan, features
        self.video = plan.video_codec != "none"
        units = out / UNITS_DIR
        self.data = _FileRoller(
            units / "data", f"u{spec.number:06d}", ".parquet", plan.data_file_mb
        )
        self.videos = {
            c.key: _FileRoller(
                units / "videos" / c.key, f"u{spec.number:06d}", ".mp4", plan.video_file_mb
            )
            for c in features.cameras
        }
        self.pending: list[Any] = []
        self.pending_bytes = 0
        self.encoders: dict[str, encoding.VideoEncoder] = {}
        self.quality: dict[str, dict[str, float]] = {}
        self.episodes: list[dict[str, Any]] = []
        # a few encoded frames per episode (position in the file -> pixels), for PSNR / SSIM
        self._originals: dict[str, dict[int, np.ndarray]] = {}

    def add(self, position: int, arrays: dict[str, np.ndarray], num_steps: int) -> None:
        import pyarrow as pa

        spec, plan = self.spec, self.plan
        episode = spec.first_episode + position
        if num_steps == 0:
            raise ValueError(
                f"{spec.path}: episode {spec.indices[position]} of split {spec.split!r} has no "
                "steps; LeRobot has no empty episodes (filter it out with rlds-hub filter)"
            )
        first_frame = spec.first_frame + sum(e["length"] for e in self.episodes)
        frame_index = np.arange(num_steps, dtype=np.int64)
        task_texts = self._tasks(arrays, num_steps)
        columns: dict[str, Any] = {}
        episode_stats: dict[str, Any] = {}
        row: dict[str, Any] = {"episode_index": episode, "length": num_steps}
        for column in self.features.columns:
            values = arrays[column.leaf.key]
            if column.camera:
                episode_stats[column.key] = self._camera(column, values, row, num_steps)
                if not self.video:
                    columns[column.key] = pa.array(
                        [{"bytes": self._png(b, column.leaf), "path": None} for b in values],
                        pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
                    )
                continue
            flat = np.ascontiguousarray(values).reshape(num_steps, -1)
            episode_stats[column.key] = stats.vector_stats(flat)
            if column.shape == (1,):
                columns[column.key] = pa.array(flat.reshape(num_steps))
            else:
                columns[column.key] = pa.FixedSizeListArray.from_arrays(
                    pa.array(flat.reshape(-1)), flat.shape[1]
                )
        index_values = {
            "next.done": np.arange(num_steps) == num_steps - 1,
            "timestamp": (frame_index / plan.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(num_steps, episode, np.int64),
            "index": first_frame + frame_index,
            "task_index": np.asarray([plan.tasks[t] for t in task_texts], np.int64),
        }
        for key, value in index_values.items():
            columns[key] = pa.array(value)
            episode_stats[key] = stats.vector_stats(value)
        table = pa.table(columns)
        if self.pending and self.pending_bytes + table.nbytes > self.data.cap:
            self._flush()
        self.pending.append(table)
        self.pending_bytes += table.nbytes
        row.update(
            {
                "tasks": list(dict.fromkeys(task_texts)),
                "data_file": len(self.data.files),  # the file _flush will write next
                "dataset_from_index": first_frame,
                "dataset_to_index": first_frame + num_steps,
                "stats": {k: stats.to_json(v) for k, v in episode_stats.items()},
            }
        )
        self.episodes.append(row)

    def _tasks(self, arrays: Mapping[str, np.ndarray], num_steps: int) -> list[str]:
        leaf = self.features.task_leaf
        if leaf is None:
            return [self.plan.default_task] * num_steps
        return [_text(v) for v in arrays[leaf.key]]

    def _png(self, value: Any, leaf: Leaf) -> bytes:
        if isinstance(value, bytes) and value[:8] == b"\x89PNG\r\n\x1a\n":
            return bytes(value)  # stored PNG: unchanged
        return encode_png(_pixels(value, leaf))  # JPEG or raw pixels: PNG, losslessly

    def _camera(
        self, column: layout.Column, blobs: np.ndarray, row: dict[str, Any], num_steps: int
    ) -> stats.Stats:
        positions = stats.sample_positions(num_steps)
        if not self.video:
            sampled = [stats.downsample(_pixels(blobs[i], column.leaf)) for i in positions]
            return stats.camera_stats(np.stack(sampled))
        frames = np.stack([_pixels(b, column.leaf) for b in blobs])
        roller = self.videos[column.key]
        encoder = self.encoders.get(column.key)
        if encoder is not None and _size(encoder.path) >= roller.cap * 0.9:
            self._close_video(column.key)
            encoder = None
        if encoder is None:
            height, width, _ = column.leaf.shape
            encoder = encoding.VideoEncoder(
                roller.new(), self.plan.video_codec, self.plan.fps, height, width
            )
            self.encoders[column.key] = encoder
        start = encoder.frames
        encoder.write(frames)
        row.setdefault("videos", {})[column.key] = {
            "file": len(roller.files) - 1,
            "from_timestamp": start / self.plan.fps,
            "to_timestamp": (start + num_steps) / self.plan.fps,
            "first_frame": start,
        }
        checked = np.unique(np.linspace(0, num_steps - 1, QUALITY_FRAMES).round().astype(int))
        kept = self._originals.setdefault(column.key, {})
        kept.update({start + int(i): frames[i] for i in checked})
        return stats.camera_stats(np.stack([stats.downsample(frames[i]) for i in positions]))

    def _close_video(self, key: str) -> None:
        encoder = self.encoders.pop(key)
        encoder.close()
        kept = self._originals.pop(key, {})
        height, width, _ = encoder.shape
        count, decoded = encoding.decode_frames(encoder.path, height, width, kept)
        if count != encoder.frames:
            raise encoding.EncodingError(
                f"{encoder.path}: {encoder.frames} frames encoded but {count} decode"
            )
        originals = np.stack([kept[i] for i in sorted(kept)])
        psnr = np.minimum(encoding.psnr(originals, decoded), 100.0)  # identical: 100 dB
        ssim = encoding.ssim(originals, decoded)
        quality = self.quality.setdefault(
            key, {"frames": 0, "psnr_sum": 0.0, "psnr_min": float("inf"), "ssim_sum": 0.0}
        )
        quality["frames"] += len(psnr)
        quality["psnr_sum"] += float(psnr.sum())
        quality["psnr_min"] = min(quality["psnr_min"], float(psnr.min()))
        quality["ssim_sum"] += float(ssim.sum())

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        table = table.replace_schema_metadata({"huggingface": json.dumps(_hf_schema(table))})
        pq.write_table(table, self.data.new(), compression="snappy")
        self.pending, self.pending_bytes = [], 0

    def finish(self) -> dict[str, Any]:
        self._flush()
        for key in list(self.encoders):
            self._close_video(key)
        return {
            "number": self.spec.number,
            "data_files": self.data.files,
            "video_files": {key: roller.files for key, roller in self.videos.items()},
            "episodes": self.episodes,
            "quality": self.quality,
        }

    def abort(self) -> None:
        for encoder in self.encoders.values():
            encoder.abort()


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _hf_schema(table: Any) -> dict[str, Any]:
    """The ``huggingface`` schema metadata ``datasets`` writes for these columns."""
    import pyarrow as pa

    def feature(kind: Any) -> dict[str, Any]:
        if pa.types.is_struct(kind):
            return {"_type": "Image"}
        if pa.types.is_fixed_size_list(kind):
            return {"feature": feature(kind.value_type), "length": kind.list_size, "_type": "List"}
        name = "bool" if pa.types.is_boolean(kind) else str(kind)
        return {
            "dtype": {"float": "float32", "double": "float64"}.get(name, name),
            "_type": "Value",
        }

    return {"info": {"features": {f.name: feature(f.type) for f in table.schema}}}


def write_unit(
    dataset: RLDSDataset, out: str | os.PathLike, spec: UnitSpec, plan: ExportPlan
) -> dict[str, Any]:
    """Writes one unit's episodes into ``out/.tmp-units/`` and returns its summary (also
    written as ``.tmp-units/u<number>.json``)."""
    features = layout.feature_map(dataset.plan, skip_unsupported=plan.skip_unsupported)
    leaves = [_stored(c.leaf) if c.camera else c.leaf for c in features.columns]
    if features.task_leaf is not None:
        leaves.append(features.task_leaf)
    if not leaves:
        leaves.append(dataset.plan.length_leaf())
    decoder = EpisodeDecoder(leaves)
    writer = _UnitWriter(Path(out), spec, plan, features)
    try:
        selection = Selection(dataset, spec.split, spec.indices)
        for position, record in enumerate(iter_records(selection)):
            arrays = decode_records(decoder, [record])
            num_steps = int(arrays.pop(NUM_STEPS)[0])
            writer.add(position, arrays, num_steps)
        summary = writer.finish()
    except BaseException:
        writer.abort()
        raise
    path = Path(out) / UNITS_DIR / f"u{spec.number:06d}.json"
    path.write_text(json.dumps(summary))
    return summary


def _number_files(
    out: Path, units: Sequence[dict[str, Any]], kind: str, template: str, **fill: str
) -> dict[tuple[int, int], dict[str, int]]:
    """Renames the units' temporary files of one kind in unit order; returns
    ``(unit, file) -> {"chunk_index", "file_index"}``."""
    numbers: dict[tuple[int, int], dict[str, int]] = {}
    count = 0
    for unit in units:
        names = unit["data_files"] if kind == "data" else unit["video_files"][fill["video_key"]]
        folder = out / UNITS_DIR / ("data" if kind == "data" else f"videos/{fill['video_key']}")
        for i, name in enumerate(names):
            where = layout.chunk_file(count)
            target = out / template.format(**fill, **where)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(folder / name, target)
            numbers[(unit["number"], i)] = where
            count += 1
    return numbers


def _write_episodes(out: Path, rows: list[dict[str, Any]], cap_mb: float) -> None:
    """``meta/episodes/chunk-CCC/file-FFF.parquet``: the rows in files under ``cap_mb``
    (LeRobot caps them as data files), each row naming its own file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    size = pa.Table.from_pylist(rows).nbytes
    per_file = max(1, int(len(rows) * cap_mb * _MB // max(size, 1)))
    for number, first in enumerate(range(0, len(rows), per_file)):
        where = layout.chunk_file(number)
        part = [
            {
                **row,
                "meta/episodes/chunk_index": where["chunk_index"],
                "meta/episodes/file_index": where["file_index"],
            }
            for row in rows[first : first + per_file]
        ]
        path = out / layout.EPISODES_PATH.format(**where)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(part), path)


def finish(
    out: str | os.PathLike,
    dataset: RLDSDataset,
    units: Sequence[dict[str, Any]],
    plan: ExportPlan,
    *,
    splits: Mapping[str, str],
    robot_type: str | None,
    rlds_layout: str,
    episode_metadata: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """Writes the dataset's metadata from the units' summaries (in unit order); returns
    ``{"frames", "episodes", "tasks", "quality", "skipped"}``."""
    import pandas as pd

    out = Path(out)
    features = layout.feature_map(dataset.plan, skip_unsupported=plan.skip_unsupported)
    units = sorted(units, key=lambda u: u["number"])
    data_numbers = _number_files(out, units, "data", layout.DATA_PATH)
    video_numbers = {
        c.key: _number_files(out, units, "video", layout.VIDEO_PATH, video_key=c.key)
        for c in features.cameras
    }
    rows, per_key = [], {}
    for unit in units:
        for episode in unit["episodes"]:
            where = data_numbers[(unit["number"], episode["data_file"])]
            row = {
                "episode_index": episode["episode_index"],
                "tasks": episode["tasks"],
                "length": episode["length"],
                "data/chunk_index": where["chunk_index"],
                "data/file_index": where["file_index"],
                "dataset_from_index": episode["dataset_from_index"],
                "dataset_to_index": episode["dataset_to_index"],
            }
            for key, video in episode.get("videos", {}).items():
                vwhere = video_numbers[key][(unit["number"], video["file"])]
                row[f"videos/{key}/chunk_index"] = vwhere["chunk_index"]
                row[f"videos/{key}/file_index"] = vwhere["file_index"]
                row[f"videos/{key}/from_timestamp"] = video["from_timestamp"]
                row[f"videos/{key}/to_timestamp"] = video["to_timestamp"]
            for key, values in episode["stats"].items():
                per_key.setdefault(key, []).append(stats.from_json(values))
                for stat, value in values.items():
                    row[f"stats/{key}/{stat}"] = value if isinstance(value, list) else [value]
            rows.append(row)
    _write_episodes(out, rows, plan.data_file_mb)
    ordered_tasks = sorted(plan.tasks, key=plan.tasks.__getitem__)
    tasks = pd.DataFrame(
        {"task_index": [plan.tasks[t] for t in ordered_tasks]}, index=ordered_tasks
    )
    tasks.to_parquet(out / layout.TASKS_PATH)
    dataset_stats = {key: stats.to_json(stats.aggregate(values)) for key, values in per_key.items()}
    (out / layout.STATS_PATH).write_text(json.dumps(dataset_stats, indent=1))
    quality = {}
    for unit in units:
        for key, q in unit["quality"].items():
            total = quality.setdefault(
                key, {"frames": 0, "psnr_sum": 0.0, "psnr_min": float("inf"), "ssim_sum": 0.0}
            )
            total["frames"] += q["frames"]
            total["psnr_sum"] += q["psnr_sum"]
            total["ssim_sum"] += q["ssim_sum"]
            total["psnr_min"] = min(total["psnr_min"], q["psnr_min"])
    quality = {
        key: {
            "frames": q["frames"],
            "psnr_mean_db": q["psnr_sum"] / q["frames"],
            "psnr_min_db": q["psnr_min"],
            "ssim_mean": q["ssim_sum"] / q["frames"],
        }
        for key, q in quality.items()
        if q["frames"]
    }
    frames = sum(r["length"] for r in rows)
    info = layout.info_json(
        features=layout.lerobot_features(features, plan.video_codec, plan.fps, {}),
        fps=plan.fps,
        robot_type=robot_type,
        total_episodes=len(rows),
        total_frames=frames,
        total_tasks=len(plan.tasks),
        splits=splits,
        videos=bool(features.cameras) and plan.video_codec != "none",
        data_file_mb=plan.data_file_mb,
        video_file_mb=plan.video_file_mb,
    )
    (out / layout.INFO_PATH).write_text(json.dumps(info, indent=4))
    rlds = {
        "format": "rlds_hub/lerobot-export",
        "version": 1,
        "dataset": dataset.name,
        "layout": rlds_layout,
        "features_json": json.loads((Path(dataset.path) / "features.json").read_text()),
        "columns": {
            c.key: {"rlds": c.leaf.name, "dtype": c.leaf.dtype.name, "shape": list(c.leaf.shape)}
            for c in features.columns
        },
        "task": {"rlds": None if features.task_leaf is None else features.task_leaf.name},
        "episodes": list(episode_metadata),
    }
    (out / layout.RLDS_PATH).write_text(json.dumps(rlds, indent=1))
    shutil.rmtree(out / UNITS_DIR)
    return {
        "frames": frames,
        "episodes": len(rows),
        "tasks": len(plan.tasks),
        "quality": quality,
        "skipped": features.skipped,
    }
