"""Minari datasets (HDF5 or Arrow storage, as Minari's ``DataCollector`` writes them), read
with Minari's own ``MinariDataset``.

A source path is a Minari dataset directory (the one holding ``data/``) or its ``data``
directory. An episode of T transitions becomes T + 1 RLDS steps: step i holds observation
o_i and info_i (Minari keeps T + 1 of both, the first from ``reset``), action a_i and reward
r_i; the last step holds o_T and info_T with zero-filled action and reward. The discount is
0 after a termination and 1 otherwise (Minari stores none); ``is_terminal`` is the last
transition's ``terminations`` flag, so truncated episodes (and unfinished ones) are not
terminal. Observation and action specs come from the dataset's Gymnasium spaces (nested
Dict / Tuple spaces become nested features); infos become the step field ``infos``; each
episode's Minari id is kept as ``episode_id``. Minari's own ``metadata.json`` (algorithm,
author, code link, description, env_spec, eval_env_spec, reference scores, ...) is kept
verbatim in the output's ``metadata.json`` under ``source.metadata``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from dm_env import specs as dm_specs

from rlds_hub import rlds_types as rlds
from rlds_hub.beam.encoder import EpisodeContentError, flatten_nested, rlds_flags
from rlds_hub.beam.sources.base import (
    ConvertUnit,
    SourceDescription,
    SourceFormatError,
    even_ranges,
)
from rlds_hub.format.specs import infer_spec

DEFAULT_EPISODES_PER_UNIT = 64
INFOS = "infos"
EPISODE_ID = "episode_id"
_STEPS = rlds.STEPS


def data_directory(path: str) -> str | None:
    """The Minari ``data`` directory of a dataset path, or None if it is not one."""
    for candidate in (os.path.join(path, "data"), path):
        if os.path.isfile(os.path.join(candidate, "metadata.json")) and any(
            name.isdigit() or name.endswith((".hdf5", ".arrow")) for name in os.listdir(candidate)
        ):
            return candidate
    return None


def detect(path: str) -> bool:
    """True if ``path`` is a Minari dataset directory (or its ``data`` directory)."""
    return data_directory(path) is not None


def raw_metadata(data_dir: str) -> dict[str, Any]:
    """Minari's own ``metadata.json``, verbatim: algorithm, author, code link, description,
    env_spec, eval_env_spec, ref_min_score / ref_max_score, the spaces, ..."""
    path = os.path.join(data_dir, "metadata.json")
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except (OSError, ValueError) as e:
        raise SourceFormatError(f"{path}: not readable as JSON ({e})") from e
    if not isinstance(content, dict):
        raise SourceFormatError(f"{path}: holds {type(content).__name__}, not an object")
    return content


def _open(data_dir: str) -> Any:
    from minari.dataset.minari_dataset import MinariDataset

    try:
        return MinariDataset(data_dir)
    except Exception as e:  # Minari raises KeyError/ValueError/OSError for broken datasets
        raise SourceFormatError(f"{data_dir}: not a readable Minari dataset ({e!r})") from e


def _nested_map(value: Any, fn: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nested_map(v, fn) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_nested_map(v, fn) for v in value)
    return fn(value)


def describe(
    path: str, *, source_no: int = 0, episodes_per_unit: int = DEFAULT_EPISODES_PER_UNIT
) -> SourceDescription:
    from rlds_hub.envs.gymnasium_env import spec_from_space

    data_dir = data_directory(path)
    if data_dir is None:
        raise SourceFormatError(f"{path} is not a Minari dataset (no data/metadata.json)")
    dataset = _open(data_dir)
    num_episodes = dataset.total_episodes
    try:
        observation_spec = spec_from_space(dataset.observation_space, "observation")
        action_spec = spec_from_space(dataset.action_space, "action")
    except TypeError as e:
        raise SourceFormatError(f"{data_dir}: {e}") from e
    reward_dtype = np.dtype(np.float64)
    info_spec: dict[str, Any] = {}
    if num_episodes:
        first = _episode(dataset, 0, data_dir)
        reward_dtype = np.asarray(first.rewards).dtype
        if first.infos:
            info_spec = {
                INFOS: _nested_map(first.infos, lambda a: infer_spec(np.asarray(a)[0], INFOS))
            }
    discount_dtype = reward_dtype if reward_dtype.kind == "f" else np.dtype(np.float64)
    files = tuple(sorted(os.path.join(d, n) for d, _, names in os.walk(data_dir) for n in names))
    units = [
        ConvertUnit((source_no, 0, start), data_dir, start, count, files if start == 0 else ())
        for start, count in even_ranges(num_episodes, episodes_per_unit)
    ]
    env_spec = dataset.env_spec
    metadata = {
        "dataset_id": dataset.id,
        "minari_version": dataset.minari_version,
        "env_name": getattr(env_spec, "id", None),
        "total_steps": int(dataset.total_steps),
        "metadata": raw_metadata(data_dir),
    }
    return SourceDescription(
        format="minari",
        path=path,
        observation_spec=observation_spec,
        action_spec=action_spec,
        reward_spec=dm_specs.Array((), reward_dtype, "reward"),
        discount_spec=dm_specs.BoundedArray((), discount_dtype, 0.0, 1.0, "discount"),
        step_metadata_spec=info_spec,
        episode_metadata_spec={EPISODE_ID: dm_specs.Array((), np.int64, EPISODE_ID)},
        layout="rlds",
        units=units,
        metadata=metadata,
        name=dataset.id.replace("/", "_").replace("-", "_"),
        reader=MinariReader(),
    )


def _episode(dataset: Any, index: int, data_dir: str) -> Any:
    try:
        return next(iter(dataset.iterate_episodes([index])))
    except Exception as e:
        raise SourceFormatError(
            f"{data_dir}, episode {index}: cannot be read ({e!r}); the dataset's files are "
            "damaged or incomplete"
        ) from e


class MinariReader:
    """Reads the episodes of a unit (an episode range)."""

    def __init__(self) -> None:
        self._datasets: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"_datasets": {}}

    def episodes(self, unit: ConvertUnit) -> Iterator[tuple[int, dict[str, Any], str]]:
        dataset = self._datasets.get(unit.part)
        if dataset is None:
            dataset = self._datasets[unit.part] = _open(unit.part)
        for index in range(unit.first, unit.first + unit.count):
            where = f"{unit.part}, episode {index}"
            episode = _episode(dataset, index, unit.part)
            columns = columns_of(episode, where)
            yield index, columns, where


def columns_of(episode: Any, where: str) -> dict[str, Any]:
    """One Minari episode's RLDS columns (see the module docstring)."""
    rewards = np.asarray(episode.rewards)
    terminations = np.asarray(episode.terminations, bool)
    truncations = np.asarray(episode.truncations, bool)
    transitions = len(rewards)
    for name, values in (("terminations", terminations), ("truncations", truncations)):
        if len(values) != transitions:
            raise EpisodeContentError(f"{where}: {len(values)} {name} for {transitions} rewards")
    if transitions and terminations[:-1].any():
        raise EpisodeContentError(
            f"{where}: terminated at transition {int(np.argmax(terminations))} of "
            f"{transitions}; an episode ends at its termination"
        )
    out: dict[str, Any] = {}
    _add(
        out,
        flatten_nested(episode.observations, f"{_STEPS}/observation"),
        transitions + 1,
        where,
        pad=False,
    )
    _add(out, flatten_nested(episode.actions, f"{_STEPS}/action"), transitions, where, pad=True)
    _add(out, {f"{_STEPS}/reward": rewards}, transitions, where, pad=True)
    discount = np.where(terminations, 0.0, 1.0)
    discount_dtype = rewards.dtype if rewards.dtype.kind == "f" else np.dtype(np.float64)
    _add(out, {f"{_STEPS}/discount": discount.astype(discount_dtype)}, transitions, where, pad=True)
    if episode.infos:
        infos = flatten_nested(episode.infos, f"{_STEPS}/{INFOS}")
        _add(out, infos, transitions + 1, where, pad=False)
    terminated = bool(transitions and terminations[-1])
    out.update(rlds_flags(transitions + 1, terminated))
    out[EPISODE_ID] = np.int64(episode.id)
    return out


def _add(out: dict[str, Any], columns: dict[str, Any], rows: int, where: str, *, pad: bool) -> None:
    for key, value in columns.items():
        array = np.asarray(value)
        if array.ndim == 0 or len(array) != rows:
            found = "a scalar" if array.ndim == 0 else f"{len(array)} rows"
            raise EpisodeContentError(f"{where}: {key} has {found}, expected {rows}")
        out[key] = np.concatenate([array, np.zeros_like(array[:1])]) if pad else array
