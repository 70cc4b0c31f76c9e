"""LeRobot v3.0 datasets (Parquet data files, MP4 videos, JSON/Parquet metadata), read with
:mod:`rlds_hub.lerobot` (no LeRobot import).

A LeRobot frame is an observation, the action taken from it and (``next.reward``,
``next.done``) what followed, and no final observation is stored: an episode of N frames
becomes N RLDS steps in the Open X-Embodiment layout (``"oxe"``; every step real, the last
one ``is_last``). Fields:

- ``observation.<a>.<b>`` -> ``observation/<a>/<b>`` (dots become nesting); cameras
  (``video`` and ``image``) are uint8 HxWx3 frames, videos decoded at the frames LeRobot's
  reader picks (:mod:`rlds_hub.lerobot.video`), images from their PNG bytes, bit for bit.
- ``action`` -> ``action`` (``action.<a>`` -> ``action/<a>``).
- ``next.reward`` -> ``reward`` (0 when the dataset has none); ``next.done`` -> the discount
  (0 after done, 1 otherwise) and ``is_terminal`` on the last step; done before the last
  frame is refused.
- ``timestamp``, ``frame_index``, ``index``, ``task_index`` -> step fields of those names;
  the task string -> ``language_instruction``; other features -> step fields, dots nested.
- episode metadata: ``episode_index``, ``length``, ``dataset_from_index``,
  ``dataset_to_index``; each episode's row in ``episodes.jsonl`` names its data file and
  its video files with their ``from_timestamp``.
- dataset metadata (``metadata.json``'s ``source``): fps, robot_type, codebase_version, each
  camera's codec and pixel format, the tasks, and ``meta/info.json`` verbatim.

Features named like RLDS's own step fields (``is_first``, ``discount``, ...) go under
``lerobot/``. A dataset written by ``rlds-hub export --format lerobot`` carries
``meta/rlds_hub.json``; with it the exported RLDS dataset comes back instead (its fields,
dtypes, shapes, episode metadata, layout and ``features.json``: :mod:`rlds_hub.lerobot.restore`);
when that record cannot rebuild every field (the export skipped some), a warning says why and
the features are converted as above.
``(1,)``-shaped features are scalars, as LeRobot stores and returns them. A work unit is a
run of at most ``episodes_per_unit`` episodes sharing one data file and one file per camera
(:func:`unit_ranges`); by default as many as give every worker at least 4 units when the
dataset has the episodes for it, at most 8 (:func:`default_episodes_per_unit`).
Depth video is refused (:func:`rlds_hub.lerobot.video.check_decodable`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from dm_env import specs as dm_specs

from rlds_hub import rlds_types as rlds
from rlds_hub.beam.encoder import EpisodeContentError, rlds_flags
from rlds_hub.beam.sources.base import (
    ConvertUnit,
    SourceDescription,
    SourceFormatError,
    even_ranges,
)
from rlds_hub.lerobot import reading, restore, video
from rlds_hub.lerobot.reading import DEFAULT_COLUMNS, LeRobotFormatError, LeRobotInfo

MAX_EPISODES_PER_UNIT = 8  # the largest default unit (a few seconds of decoding)
UNITS_PER_WORKER = 4  # the fewest units per worker the default aims at
REWARD, DONE = "next.reward", "next.done"
LANGUAGE = "language_instruction"
LEROBOT = "lerobot"  # the step field of features named like RLDS's own (is_first, discount...)
EPISODE_COLUMNS = ("episode_index", "length", "dataset_from_index", "dataset_to_index")
_STEPS = rlds.STEPS


def detect(path: str) -> bool:
    """True if ``path`` holds a LeRobot dataset (``meta/info.json``)."""
    return os.path.isdir(path) and reading.is_lerobot_dir(path)


def _nest(tree: dict[str, Any], parts: list[str], value: Any, name: str) -> None:
    for part in parts[:-1]:
        node = tree.setdefault(part, {})
        if not isinstance(node, dict):
            raise SourceFormatError(f"feature {name} nests under a feature of its own name")
        tree = node
    if parts[-1] in tree:
        raise SourceFormatError(f"feature {name} clashes with another feature's nesting")
    tree[parts[-1]] = value


def field_of(name: str) -> tuple[str, list[str]]:
    """Where feature ``name`` goes: ("observation" | "action" | "step", the key path)."""
    head, _, rest = name.partition(".")
    if head == "observation" and rest:
        return "observation", rest.split(".")
    if head == "action":
        return "action", rest.split(".") if rest else []
    parts = name.split(".")
    if parts[0] in (*rlds.CORE_STEP_FIELDS, LANGUAGE):  # e.g. an rlds_hub export's is_first
        return "step", [LEROBOT, *parts]
    return "step", parts


def _spec(name: str, feature: dict[str, Any]) -> dm_specs.Array:
    try:
        if feature.get("dtype") in ("image", "video"):
            return dm_specs.Array(reading.camera_shape(feature), np.uint8, name)
        if feature.get("dtype") == "string":
            return dm_specs.StringArray(reading.value_shape(feature), string_type=str, name=name)
        return dm_specs.Array(reading.value_shape(feature), reading.value_dtype(feature), name)
    except (LeRobotFormatError, KeyError, ValueError) as e:
        raise SourceFormatError(
            f"meta/info.json's feature {name} ({feature.get('dtype')}, shape "
            f"{feature.get('shape')}) cannot be converted: {e}"
        ) from e


def _specs(info: LeRobotInfo) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    observation: dict[str, Any] = {}
    actions: dict[str, Any] = {}
    step: dict[str, Any] = {}
    for name, feature in info.features.items():
        if name in (REWARD, DONE, "episode_index"):
            continue
        target, parts = field_of(name)
        spec = _spec(name, feature)
        if target == "observation":
            _nest(observation, parts, spec, name)
        elif target == "action":
            if not parts:
                actions[""] = spec
            else:
                _nest(actions, parts, spec, name)
        else:
            _nest(step, parts, spec, name)
    if not actions:
        raise SourceFormatError(f"{info.root}: meta/info.json has no action feature")
    if "" in actions and len(actions) > 1:
        raise SourceFormatError(f"{info.root}: both action and action.* features")
    if not observation:
        raise SourceFormatError(f"{info.root}: meta/info.json has no observation.* feature")
    step[LANGUAGE] = dm_specs.StringArray((), string_type=str, name=LANGUAGE)
    return observation, actions.get("", actions), step


def _file_key(episode: dict[str, Any], info: LeRobotInfo) -> tuple:
    cams = tuple(
        (episode[f"videos/{k}/chunk_index"], episode[f"videos/{k}/file_index"])
        for k in info.video_keys
    )
    return (episode["data/chunk_index"], episode["data/file_index"], *cams)


def default_episodes_per_unit(num_episodes: int, workers: int | None = None) -> int:
    """The default unit size: the largest (at most :data:`MAX_EPISODES_PER_UNIT`) that makes
    at least :data:`UNITS_PER_WORKER` units per worker, 1 when there are fewer episodes than
    that. ``workers``: default the machine's cores, at least 4 (the DirectRunner runs one
    worker per core; a Dask cluster's workers are not known when the source is described)."""
    if workers is None:
        workers = max(4, os.cpu_count() or 1)
    wanted = UNITS_PER_WORKER * max(1, workers)
    return max(1, min(MAX_EPISODES_PER_UNIT, num_episodes // wanted))


def unit_ranges(group_sizes: Sequence[int], episodes_per_unit: int) -> list[tuple[int, int]]:
    """``(first episode, episodes)`` of the work units of consecutive groups of episodes
    (``group_sizes``: the episodes of each run sharing one data file and one video file per
    camera): each group split into even runs of at most ``episodes_per_unit``, so a unit never
    spans two files and every episode is in exactly one unit, in order."""
    if episodes_per_unit < 1:
        raise ValueError(f"episodes_per_unit must be >= 1, got {episodes_per_unit}")
    units, first = [], 0
    for size in group_sizes:
        units += [(first + start, count) for start, count in even_ranges(size, episodes_per_unit)]
        first += size
    return units


def describe(
    path: str, *, source_no: int = 0, episodes_per_unit: int | None = None
) -> SourceDescription:
    try:
        info = reading.read_info(path)
        tasks = reading.read_tasks(path)
        episodes = reading.read_episodes(path)
        for key in info.video_keys:
            video.check_decodable(key, info.features[key], f"{path}: meta/info.json")
        record = reading.read_export_record(path)
    except LeRobotFormatError as e:
        raise SourceFormatError(str(e)) from e
    back: restore.Restore | None = None
    unused = None
    if record is not None:
        try:
            back = restore.from_record(record, info, len(episodes))
        except LeRobotFormatError as e:
            unused = f"{reading.EXPORT_RECORD} not used: {e}"
            warnings.warn(f"{unused}; the LeRobot features are converted as they are", stacklevel=2)
    for column in DEFAULT_COLUMNS:
        if column not in info.features:
            raise SourceFormatError(f"{path}: meta/info.json lacks LeRobot's {column} feature")
    files = _check_files(info, episodes)
    split_ranges: list[reading.SplitRange] = []
    splits_problem = None
    try:
        split_ranges = reading.episode_splits(info, len(episodes))
    except LeRobotFormatError as e:
        splits_problem = str(e)
    units: list[ConvertUnit] = []
    checksummed: set[str] = set()
    groups: list[list[int]] = []
    for number, episode in enumerate(episodes):
        if groups and _file_key(episodes[groups[-1][0]], info) == _file_key(episode, info):
            groups[-1].append(number)
        else:
            groups.append([number])
    if episodes_per_unit is None:
        episodes_per_unit = default_episodes_per_unit(len(episodes))
    for first, count in unit_ranges([len(g) for g in groups], episodes_per_unit):
        sums = tuple(f for f in files[first] if f not in checksummed)
        checksummed.update(sums)
        part = info.data_file(
            episodes[first]["data/chunk_index"], episodes[first]["data/file_index"]
        )
        units.append(ConvertUnit((source_no, 0, first), part, first, count, sums))
    codecs = {}
    for key in info.video_keys:
        facts = info.features[key].get("info") or {}
        codecs[key] = {"codec": facts.get("video.codec"), "pix_fmt": facts.get("video.pix_fmt")}
    metadata = {
        "env_name": info.robot_type,
        "robot_type": info.robot_type,
        "fps": info.fps,
        "codebase_version": info.version,
        "videos": codecs,
        "tasks": tasks,
        "rewards": REWARD in info.features,
        "metadata": info.raw,
    }
    if back is not None:
        metadata["restored_from"] = reading.EXPORT_RECORD
        splits = [str(e.get("split")) for e in record["episodes"]]
        metadata["exported_splits"] = {name: splits.count(name) for name in dict.fromkeys(splits)}
        specs = back.specs()
        return SourceDescription(
            format="lerobot",
            path=path,
            observation_spec=specs["observation"],
            action_spec=specs["action"],
            reward_spec=specs["reward"],
            discount_spec=specs["discount"],
            step_metadata_spec=specs["step_metadata"],
            episode_metadata_spec=specs["episode_metadata"],
            layout=back.layout,
            units=units,
            metadata=metadata,
            name=back.name or _name(path),
            reader=LeRobotReader(info, tasks, episodes, back),
            features_json=back.features_json,
            splits=split_ranges,
            splits_problem=splits_problem,
        )
    if unused:
        metadata["export_record"] = unused
    observation_spec, action_spec, step_spec = _specs(info)
    return SourceDescription(
        format="lerobot",
        path=path,
        observation_spec=observation_spec,
        action_spec=action_spec,
        reward_spec=dm_specs.Array((), reward_dtype(info), "reward"),
        discount_spec=dm_specs.BoundedArray((), reward_dtype(info), 0.0, 1.0, "discount"),
        step_metadata_spec=step_spec,
        episode_metadata_spec={k: dm_specs.Array((), np.int64, k) for k in EPISODE_COLUMNS},
        layout="oxe",
        units=units,
        metadata=metadata,
        name=_name(path),
        reader=LeRobotReader(info, tasks, episodes),
        splits=split_ranges,
        splits_problem=splits_problem,
    )


def _name(path: str) -> str:
    return os.path.basename(os.path.normpath(path)).replace("-", "_").replace(".", "_")


def reward_dtype(info: LeRobotInfo) -> np.dtype:
    """The reward's (and discount's) dtype: ``next.reward``'s when it is a float (float32 in
    LeRobot's recordings), else float32."""
    if REWARD in info.features:
        dtype = reading.value_dtype(info.features[REWARD])
        if dtype.kind == "f":
            return dtype
    return np.dtype(np.float32)


def _check_files(info: LeRobotInfo, episodes: list[dict[str, Any]]) -> list[list[str]]:
    """Every episode's data and video files, checked to exist (before anything is written)."""
    out = []
    for episode in episodes:
        where = f"{info.root}, episode {episode['episode_index']}"
        paths = [info.data_file(episode["data/chunk_index"], episode["data/file_index"])]
        for key in info.video_keys:
            paths.append(
                info.video_file(
                    key, episode[f"videos/{key}/chunk_index"], episode[f"videos/{key}/file_index"]
                )
            )
        for file in paths:
            if not os.path.isfile(file):
                raise SourceFormatError(f"{where}: {file} is missing")
        out.append(paths)
    return out


class LeRobotReader:
    """Reads the episodes of a unit: one data file's rows, decoded camera frames."""

    def __init__(
        self,
        info: LeRobotInfo,
        tasks: list[str],
        episodes: list[dict[str, Any]],
        back: restore.Restore | None = None,
    ):
        self._info = info
        self._tasks = tasks
        self._episodes = episodes
        self._restore = back
        self._offsets: dict[tuple[int, int], int] = {}
        for episode in episodes:
            key = (episode["data/chunk_index"], episode["data/file_index"])
            start = int(episode["dataset_from_index"])
            self._offsets[key] = min(self._offsets.get(key, start), start)

    def origin(self, index: int) -> dict[str, Any]:
        """Where episode ``index`` is in its cameras' files (file, start in s); its data file
        is the unit's part."""
        info, episode = self._info, self._episodes[index]
        out: dict[str, Any] = {}
        for key in info.video_keys:
            path = info.video_file(
                key, episode[f"videos/{key}/chunk_index"], episode[f"videos/{key}/file_index"]
            )
            out.setdefault("videos", {})[key] = {
                "file": os.path.relpath(path, info.root),
                "from_timestamp": episode[f"videos/{key}/from_timestamp"],
            }
        return out

    def episodes(self, unit: ConvertUnit) -> Iterator[tuple[int, dict[str, Any], str]]:
        import pyarrow.parquet as pq

        first = self._episodes[unit.first]
        chunk, file = first["data/chunk_index"], first["data/file_index"]
        try:
            table = pq.read_table(unit.part)
        except Exception as e:  # pyarrow's errors for unreadable files
            raise SourceFormatError(f"{unit.part}: not a readable Parquet file ({e})") from e
        streams: dict[str, video.VideoStream] = {}
        for index in range(unit.first, unit.first + unit.count):
            episode = self._episodes[index]
            where = f"{unit.part}, episode {index}"
            try:
                rows = reading.episode_rows(
                    self._info, table, episode, unit.part, self._offsets[(chunk, file)]
                )
                columns = self.columns(rows, episode, where, streams)
            except LeRobotFormatError as e:
                raise SourceFormatError(str(e)) from e
            yield index, columns, where

    def columns(
        self,
        rows: Any,
        episode: dict[str, Any],
        where: str,
        streams: dict[str, video.VideoStream],
    ) -> dict[str, Any]:
        """One episode's RLDS columns (see the module docstring; with an export record,
        the exported dataset's own fields)."""
        info = self._info
        n = rows.num_rows
        if self._restore is not None:
            back = self._restore
            values = {key: self._values(key, rows, episode, where, streams) for key in back.columns}
            out = back.step_columns(values, self._task_strings(rows, where), n)
            out.update(back.episode_columns(int(episode["episode_index"])))
            return out
        out: dict[str, Any] = {}
        for name in info.features:
            if name in (REWARD, DONE, "episode_index"):
                continue
            values = self._values(name, rows, episode, where, streams)
            target, parts = field_of(name)
            key = "/".join([target if target != "step" else "", *parts]).lstrip("/")
            out[f"{_STEPS}/{key}"] = values
        dtype = reward_dtype(info)
        reward = (
            reading.column_array(rows, REWARD, info.features[REWARD], where).astype(dtype)
            if REWARD in info.features
            else np.zeros(n, dtype)
        )
        done = (
            reading.column_array(rows, DONE, info.features[DONE], where).reshape(n).astype(bool)
            if DONE in info.features
            else np.zeros(n, bool)
        )
        if n and done[:-1].any():
            raise EpisodeContentError(
                f"{where}: next.done is set at frame {int(np.argmax(done))} of {n}; an episode "
                "ends at its last frame"
            )
        out[f"{_STEPS}/reward"] = reward.reshape(n)
        out[f"{_STEPS}/discount"] = np.where(done, 0.0, 1.0).astype(dtype)
        out[f"{_STEPS}/{LANGUAGE}"] = np.asarray(self._task_strings(rows, where), dtype=object)
        out.update(rlds_flags(n, bool(n and done[-1])))
        for name in EPISODE_COLUMNS:
            out[name] = np.int64(episode[name])
        return out

    def _task_strings(self, rows: Any, where: str) -> list[str]:
        task_index = rows.column("task_index").to_numpy()
        try:
            return [self._tasks[int(t)] for t in task_index]
        except IndexError as e:
            raise SourceFormatError(
                f"{where}: task_index {int(task_index.max())} is not in meta/tasks.parquet "
                f"({len(self._tasks)} tasks)"
            ) from e

    def _values(
        self,
        name: str,
        rows: Any,
        episode: dict[str, Any],
        where: str,
        streams: dict[str, video.VideoStream],
    ) -> np.ndarray:
        feature = self._info.features[name]
        if feature.get("dtype") == "video":
            return self._frames(name, rows, episode, where, streams)
        return reading.column_array(rows, name, feature, where)

    def _frames(
        self,
        key: str,
        rows: Any,
        episode: dict[str, Any],
        where: str,
        streams: dict[str, video.VideoStream],
    ) -> np.ndarray:
        info = self._info
        path = info.video_file(
            key, episode[f"videos/{key}/chunk_index"], episode[f"videos/{key}/file_index"]
        )
        stream = streams.get(path)
        if stream is None:
            stream = streams[path] = video.probe(path)
        start = float(episode[f"videos/{key}/from_timestamp"])
        # LeRobot adds the float32 timestamp (as a Python float) to the float64 start
        timestamps = [start + float(t) for t in rows.column("timestamp").to_numpy()]
        indices = video.frame_indices(stream, timestamps, f"{where} ({key})")
        low, high = int(indices.min()), int(indices.max())
        frames = video.decode(stream, low, high - low + 1, f"{where} ({key})")
        expected = reading.camera_shape(info.features[key])
        if frames.shape[1:] != expected:
            raise SourceFormatError(
                f"{where}: {path} has {frames.shape[1:]} frames, info.json says {expected}"
            )
        return frames[indices - low]
