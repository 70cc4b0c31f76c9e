"""The way back from ``rlds-hub export --format lerobot``: the RLDS dataset a LeRobot export
came from, rebuilt from the export's ``meta/rlds_hub.json`` (the source's ``features.json``,
each LeRobot column's RLDS field, dtype and shape, the task's field, each episode's metadata).

LeRobot changes some of what it stores (scalars become ``(1,)`` features, ``next.done`` is
added, its reader returns float64 as float32); with the record, a LeRobot -> RLDS conversion
gives back the original step fields with their names, dtypes and shapes, the episode metadata,
the layout and ``features.json``: RLDS -> LeRobot (``none`` codec) -> RLDS is bit-exact (JPEG
image features come back as PNG ones, with the same pixels).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from dm_env import specs as dm_specs

from rlds_hub.format.plan import LeafKind, Plan, PlanError, unflatten
from rlds_hub.lerobot.reading import EXPORT_RECORD, LeRobotFormatError, LeRobotInfo

Field = tuple[str, str, tuple[int, ...]]  # RLDS name, dtype name, shape


@dataclasses.dataclass(frozen=True)
class Restore:
    """How a LeRobot export's columns become the original RLDS dataset's fields."""

    features_json: dict[str, Any]
    layout: str
    name: str | None
    columns: dict[str, Field]  # LeRobot feature -> its RLDS step field
    task: str | None  # the step field of the frames' task string
    episode_fields: tuple[Field, ...]
    episode_metadata: tuple[dict[str, Any], ...]  # by LeRobot episode_index

    def specs(self) -> dict[str, Any]:
        """The original dataset's specs: observation, action, reward, discount (None when
        the features have none), step_metadata and episode_metadata."""
        plan = Plan.from_features_json(self.features_json)
        steps = unflatten({leaf.name: _spec(leaf) for leaf in plan.leaves if leaf.in_steps})
        episode = unflatten({leaf.name: _spec(leaf) for leaf in plan.leaves if not leaf.in_steps})
        out = {key: steps.pop(key, None) for key in ("observation", "action", "reward", "discount")}
        for flag in ("is_first", "is_last", "is_terminal"):
            steps.pop(flag, None)
        out["step_metadata"] = steps
        out["episode_metadata"] = episode
        return out

    def step_columns(self, values: dict[str, np.ndarray], tasks: list[str], n: int) -> dict:
        """``steps/<field>`` columns from the LeRobot columns' values (``values``: LeRobot
        feature -> array over the episode's frames) and the frames' task strings."""
        out: dict[str, Any] = {}
        for key, (name, dtype, shape) in self.columns.items():
            array = np.asarray(values[key])
            if np.dtype(dtype).kind != "O":
                array = array.astype(dtype, copy=False)
            out[f"steps/{name}"] = array.reshape((n, *shape))
        if self.task is not None:
            out[f"steps/{self.task}"] = np.asarray(tasks, dtype=object)
        return out

    def episode_columns(self, episode_index: int) -> dict[str, Any]:
        """The episode's metadata fields, in their original dtypes and shapes."""
        stored = self.episode_metadata[episode_index]
        out: dict[str, Any] = {}
        for name, dtype, shape in self.episode_fields:
            value = stored[name]
            if np.dtype(dtype).kind == "O":
                out[name] = value
            else:
                out[name] = np.asarray(value, dtype=dtype).reshape(shape)
        return out


def lossless_images(features_json: Any) -> Any:
    """``features_json`` with JPEG image features stored as PNG: rlds_hub re-encodes images
    only losslessly, and the pixels (what every reader returns) stay the same."""
    if isinstance(features_json, dict):
        out = {k: lossless_images(v) for k, v in features_json.items()}
        if out.get("encodingFormat") == "jpeg":
            out["encodingFormat"] = "png"
        return out
    if isinstance(features_json, list):
        return [lossless_images(v) for v in features_json]
    return features_json


def _spec(leaf: Any) -> Any:
    if leaf.kind == LeafKind.STRING:
        return dm_specs.StringArray(leaf.shape, string_type=str, name=leaf.name)
    return dm_specs.Array(leaf.shape, leaf.dtype, name=leaf.name)


def from_record(record: dict[str, Any], info: LeRobotInfo, num_episodes: int) -> Restore:
    """The restore plan of an export record; an error saying what is missing when the record
    cannot rebuild every field (e.g. the export skipped unsupported fields)."""
    where = f"{info.root}/{EXPORT_RECORD}"
    try:
        plan = Plan.from_features_json(record["features_json"])
    except PlanError as e:
        raise LeRobotFormatError(f"{where}: its features_json is not RLDS features ({e})") from e
    columns: dict[str, Field] = {}
    for key, column in record["columns"].items():
        if key not in info.features:
            raise LeRobotFormatError(f"{where}: column {key} is not in meta/info.json")
        columns[key] = (str(column["rlds"]), str(column["dtype"]), tuple(column["shape"]))
    task = (record.get("task") or {}).get("rlds")
    covered = {name for name, _, _ in columns.values()} | ({task} if task else set())
    steps = {leaf.name for leaf in plan.leaves if leaf.in_steps}
    missing = sorted(steps - covered)
    if missing:
        raise LeRobotFormatError(
            f"{where}: the step fields {missing} of the exported dataset are not in the LeRobot "
            "dataset (the export skipped them)"
        )
    episode_fields = tuple(
        (leaf.name, leaf.dtype.name, leaf.shape) for leaf in plan.leaves if not leaf.in_steps
    )
    episodes = record["episodes"]
    if len(episodes) != num_episodes:
        raise LeRobotFormatError(
            f"{where}: {len(episodes)} episodes recorded, the dataset has {num_episodes}"
        )
    metadata = tuple(dict(e.get("metadata") or {}) for e in episodes)
    for index, stored in enumerate(metadata):
        absent = [name for name, _, _ in episode_fields if name not in stored]
        if absent:
            raise LeRobotFormatError(f"{where}: episode {index} lacks the metadata {absent}")
    layout = str(record["layout"])
    if layout not in ("rlds", "oxe"):
        raise LeRobotFormatError(f"{where}: layout {layout!r} is neither rlds nor oxe")
    return Restore(
        features_json=lossless_images(record["features_json"]),
        layout=layout,
        name=record.get("dataset"),
        columns=columns,
        task=task,
        episode_fields=episode_fields,
        episode_metadata=metadata,
    )
