"""D4RL-style HDF5 files: one flat table of transitions (``observations``, ``actions``,
``rewards``, ``terminals``, ``timeouts``, optional ``next_observations`` and ``infos/*``), read
with h5py.

Episodes are cut after every transition whose ``terminals`` or ``timeouts`` flag is set, and at
the end of the file (an unfinished last episode is kept, as truncated). An episode ends
terminated exactly when its last transition's ``terminals`` flag is set.

- With ``next_observations`` the output has the RLDS layout: an episode of N transitions has
  N + 1 steps, the last holding ``next_observations`` of the last transition with zero-filled
  action, reward, discount and infos.
- Without it the final observation is unknown, so the output has the Open X-Embodiment layout
  (``"oxe"``): N steps, each a real (observation, action, reward) transition, the last one
  flagged ``is_last``.

The discount is 0 after a terminal transition and 1 otherwise, in the rewards' float dtype.
Observations and actions may be HDF5 groups (nested features). ``infos/*`` become the step
field ``infos``, aligned with the transitions. The ``metadata/*`` group (algorithm, iteration,
policy weights: one file's, so kept once rather than in every episode as TFDS's D4RL builder
does) goes into the output's ``metadata.json`` under ``source.metadata``
(:func:`metadata_value`; :func:`metadata_arrays` reads it back). Each episode's row records
its transitions' rows in the file (:meth:`D4RLReader.origin`).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from dm_env import specs as dm_specs

from rlds_hub import rlds_types as rlds
from rlds_hub.beam.encoder import flatten_nested, rlds_flags
from rlds_hub.beam.sources.base import ConvertUnit, SourceDescription, SourceFormatError
from rlds_hub.storage.episode_index import json_safe

REQUIRED = ("observations", "actions", "rewards", "terminals", "timeouts")
OPTIONAL = ("next_observations", "infos")
DEFAULT_STEPS_PER_UNIT = 100_000
_STEPS = rlds.STEPS


def detect(path: str) -> bool:
    """True if ``path`` is an HDF5 file (``.hdf5`` or ``.h5``)."""
    return os.path.isfile(path) and path.endswith((".hdf5", ".h5"))


def _open(path: str) -> Any:
    import h5py

    if os.path.isdir(path):
        raise SourceFormatError(
            f"{path} is a directory; --source-format d4rl reads one D4RL "
            "HDF5 file (e.g. hopper-medium-v2.hdf5)"
        )
    if not os.path.exists(path):
        raise SourceFormatError(f"{path} does not exist")
    if not h5py.is_hdf5(path):
        raise SourceFormatError(f"{path} is not an HDF5 file (no HDF5 signature)")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise SourceFormatError(f"{path}: not a readable HDF5 file ({e})") from e


def _datasets(node: Any, prefix: str) -> dict[str, Any]:
    """``{flattened name: h5py.Dataset}`` of a dataset or a group of them."""
    import h5py

    if isinstance(node, h5py.Dataset):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key in sorted(node.keys()):
        out.update(_datasets(node[key], f"{prefix}/{key}"))
    return out


def _spec_tree(node: Any, name: str) -> Any:
    import h5py

    if isinstance(node, h5py.Dataset):
        return dm_specs.Array(node.shape[1:], node.dtype, name)
    return {key: _spec_tree(node[key], key) for key in sorted(node.keys())}


def episode_bounds(terminals: np.ndarray, timeouts: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` transitions of each episode (cut at terminals, timeouts, the end)."""
    ends = np.flatnonzero(np.asarray(terminals, bool) | np.asarray(timeouts, bool)) + 1
    bounds = []
    start = 0
    for end in ends.tolist():
        bounds.append((start, end))
        start = end
    if start < len(terminals):
        bounds.append((start, len(terminals)))
    return bounds


def describe(
    path: str,
    *,
    source_no: int = 0,
    steps_per_unit: int = DEFAULT_STEPS_PER_UNIT,
    episodes_per_unit: int | None = None,
) -> SourceDescription:
    with _open(path) as f:
        missing = [k for k in REQUIRED if k not in f]
        if missing:
            raise SourceFormatError(
                f"{path}: missing the required key(s) {missing} (a D4RL-style file has "
                f"{', '.join(REQUIRED)}; it holds {sorted(f.keys())})"
            )
        columns = {}
        for key in (*REQUIRED, *OPTIONAL):
            if key in f:
                columns.update(_datasets(f[key], key))
        lengths = {key: len(d) for key, d in columns.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k}: {n}" for k, n in sorted(lengths.items()))
            raise SourceFormatError(
                f"{path}: the columns have different lengths ({shown}); "
                "every column holds one row per transition"
            )
        for key in ("rewards", "terminals", "timeouts"):
            if f[key].ndim > 1 and f[key].shape[1:] != (1,):
                raise SourceFormatError(
                    f"{path}: {key} has shape {f[key].shape}, expected one value per transition"
                )
        bounds = episode_bounds(
            np.asarray(f["terminals"][()]).reshape(-1), np.asarray(f["timeouts"][()]).reshape(-1)
        )
        has_next = "next_observations" in f
        observation_spec = _spec_tree(f["observations"], "observation")
        action_spec = _spec_tree(f["actions"], "action")
        reward_dtype = np.dtype(f["rewards"].dtype)
        infos_spec = {"infos": _spec_tree(f["infos"], "infos")} if "infos" in f else {}
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        file_metadata = _metadata_tree(f["metadata"]) if "metadata" in f else None
    discount_dtype = reward_dtype if reward_dtype.kind == "f" else np.dtype(np.float64)
    units = []
    start = 0
    while start < len(bounds):
        count = 0
        steps = 0
        while start + count < len(bounds) and (
            count == 0
            or (steps < steps_per_unit if episodes_per_unit is None else count < episodes_per_unit)
        ):
            steps += bounds[start + count][1] - bounds[start + count][0]
            count += 1
        units.append(
            ConvertUnit((source_no, 0, start), path, start, count, (path,) if start == 0 else ())
        )
        start += count
    return SourceDescription(
        format="d4rl",
        path=path,
        observation_spec=observation_spec,
        action_spec=action_spec,
        reward_spec=dm_specs.Array((), reward_dtype, "reward"),
        discount_spec=dm_specs.BoundedArray((), discount_dtype, 0.0, 1.0, "discount"),
        step_metadata_spec=infos_spec,
        episode_metadata_spec={},
        layout="rlds" if has_next else "oxe",
        units=units,
        metadata={
            "attributes": attrs,
            "next_observations": has_next,
            "env_name": attrs.get("env_name") or attrs.get("env"),
            **({"metadata": file_metadata} if file_metadata is not None else {}),
        },
        name=os.path.splitext(os.path.basename(path))[0],
        reader=D4RLReader(bounds, has_next),
    )


def _metadata_tree(node: Any) -> Any:
    """The ``metadata/*`` group (algorithm, iteration, policy weights, ...) as JSON:
    nested dicts of :func:`metadata_value` s."""
    import h5py

    if isinstance(node, h5py.Dataset):
        return metadata_value(node[()])
    return {key: _metadata_tree(node[key]) for key in sorted(node.keys())}


def metadata_value(value: Any) -> Any:
    """One metadata value as JSON, losslessly: text as a string, a scalar as a number or a
    bool, an array as ``{"dtype", "shape", "base64"}`` (its little-endian bytes); bytes that
    are not UTF-8 as ``{"dtype": "bytes", "base64"}``."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"dtype": "bytes", "base64": base64.b64encode(value).decode()}
    array = np.asarray(value)
    if array.dtype.kind in "OSU":
        return json_safe(array.tolist())
    if array.ndim == 0:
        return array.item()
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return {
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "base64": base64.b64encode(np.ascontiguousarray(little).tobytes()).decode(),
    }


def metadata_arrays(value: Any) -> Any:
    """The inverse of the D4RL source metadata's JSON (``metadata.json``'s
    ``source.metadata``): arrays as NumPy arrays of their dtype and shape, bytes as bytes."""
    if isinstance(value, dict) and "base64" in value and "dtype" in value:
        data = base64.b64decode(value["base64"])
        if value["dtype"] == "bytes":
            return data
        dtype = np.dtype(value["dtype"]).newbyteorder("<")
        return (
            np.frombuffer(data, dtype)
            .astype(dtype.newbyteorder("="), copy=True)
            .reshape(value["shape"])
        )
    if isinstance(value, dict):
        return {k: metadata_arrays(v) for k, v in value.items()}
    return value


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


class D4RLReader:
    """Reads the episodes of a unit (an episode range) of an HDF5 file."""

    def __init__(self, bounds: list[tuple[int, int]], has_next: bool):
        self._bounds = bounds
        self._has_next = has_next

    def origin(self, index: int) -> dict[str, Any]:
        """Where episode ``index`` is in the file: its transitions' rows ``[start, stop)``."""
        start, stop = self._bounds[index]
        return {"rows": [start, stop]}

    def episodes(self, unit: ConvertUnit) -> Iterator[tuple[int, dict[str, Any], str]]:
        with _open(unit.part) as f:
            first, stop = self._bounds[unit.first][0], self._bounds[unit.first + unit.count - 1][1]
            block = {}
            for key in (*REQUIRED, *OPTIONAL):
                if key in f:
                    for name, dataset in _datasets(f[key], key).items():
                        try:
                            block[name] = np.asarray(dataset[first:stop])
                        except OSError as e:
                            raise SourceFormatError(
                                f"{unit.part}: {name} rows {first}..{stop} cannot be read "
                                f"({e}); the file is damaged or truncated"
                            ) from e
            for index in range(unit.first, unit.first + unit.count):
                start, end = self._bounds[index]
                rows = {k: v[start - first : end - first] for k, v in block.items()}
                yield index, self.columns(rows), f"{unit.part}, episode {index}"

    def columns(self, rows: dict[str, np.ndarray]) -> dict[str, Any]:
        terminals = rows["terminals"].reshape(-1).astype(bool)
        n = len(terminals)
        terminated = bool(terminals[-1])
        rewards = rows["rewards"].reshape(n)
        discount_dtype = rewards.dtype if rewards.dtype.kind == "f" else np.dtype(np.float64)
        discount = np.where(terminals, 0.0, 1.0).astype(discount_dtype)
        per_step = {f"{_STEPS}/reward": rewards, f"{_STEPS}/discount": discount}
        for name, values in rows.items():
            head, _, rest = name.partition("/")
            if head == "actions":
                per_step[f"{_STEPS}/action" + (f"/{rest}" if rest else "")] = values
            elif head == "infos":
                per_step[f"{_STEPS}/infos/{rest}"] = values
        out: dict[str, Any] = {}
        observations = {n_: v for n_, v in rows.items() if n_.split("/")[0] == "observations"}
        for name, values in observations.items():
            rest = name.partition("/")[2]
            key = f"{_STEPS}/observation" + (f"/{rest}" if rest else "")
            if self._has_next:
                final = rows["next_observations" + (f"/{rest}" if rest else "")][-1:]
                values = np.concatenate([values, final])
            out[key] = values
        for key, values in per_step.items():
            out[key] = (
                np.concatenate([values, np.zeros_like(values[:1])]) if self._has_next else values
            )
        out.update(rlds_flags(n + 1 if self._has_next else n, terminated))
        return out


__all__ = [
    "D4RLReader",
    "describe",
    "episode_bounds",
    "flatten_nested",
    "metadata_arrays",
    "metadata_value",
]
