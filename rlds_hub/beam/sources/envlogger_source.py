"""envlogger Riegeli logs (as ``envlogger.EnvLogger``'s Riegeli backend writes them), read
with ``envlogger.Reader``.

A source path is a directory holding one or more log directories (each has a
``metadata.riegeli``), found at any depth, in sorted order. Steps are aligned exactly as TFDS's
own envlogger reader (``tensorflow_datasets.rlds.envlogger_reader``) aligns them: RLDS step i
holds envlogger step i's observation and step metadata (``custom_data``) and the action,
reward and discount of envlogger step i + 1; the last step holds the final observation with
zero-filled action, reward and discount, and ``is_terminal`` is true when the last timestep is
LAST with discount 0 (a termination), false for a truncation or an unfinished episode.
Episode metadata (``episode_fn``'s values) become episode-level features: a dict's entries
by name, any other value as ``episode_metadata``.

The control rate (``fps``, steps per second) is carried when a log says it: the rate
rlds_hub's Recorder stored in its provenance (the environment's ``control_timestep`` or
``dt``), else a positive number under the log metadata's own ``fps`` key
(``EnvLogger(..., metadata={"fps": 30})``). envlogger itself records no rate (its metadata
holds only the environment's specs), so other logs have none: give it to the convert with
``--fps``. Log directories that say different rates are refused.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from rlds_hub import rlds_types as rlds
from rlds_hub.beam.encoder import EpisodeContentError, flatten_nested, rlds_flags, stack_steps
from rlds_hub.beam.sources.base import (
    ConvertUnit,
    SourceDescription,
    SourceFormatError,
    even_ranges,
)
from rlds_hub.beam.sources.envlogger_codec import episode_steps
from rlds_hub.format.metadata import MetadataError
from rlds_hub.format.plan import Plan
from rlds_hub.format.specs import infer_spec, spec_differences, spec_to_json
from rlds_hub.recorders.riegeli import PROVENANCE_KEY, recorded_provenance

METADATA_FILE = "metadata.riegeli"
_NOT_USER_KEYS = ("environment_specs", PROVENANCE_KEY)  # envlogger's and rlds_hub's own
DEFAULT_EPISODES_PER_UNIT = 8
_STEPS = rlds.STEPS


def find_log_dirs(root: str) -> list[str]:
    """Directories at or below ``root`` holding an envlogger log (sorted)."""
    found = []
    for path, dirs, names in os.walk(root):
        dirs.sort()
        if METADATA_FILE in names:
            found.append(path)
    return sorted(found)


def detect(path: str) -> bool:
    """True if ``path`` is a directory with envlogger logs at or below it."""
    return bool(find_log_dirs(path))


def _open(log_dir: str) -> Any:
    import envlogger

    try:
        return envlogger.Reader(log_dir)
    except Exception as e:  # riegeli raises RuntimeErrors naming the file
        raise SourceFormatError(f"{log_dir}: not a readable envlogger log ({e})") from e


def _episode_metadata_value(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    return {rlds.EPISODE_METADATA: value}


def _step_metadata(custom_data: Any) -> dict[str, Any]:
    if not isinstance(custom_data, dict):
        return {}
    return {k: v for k, v in custom_data.items() if k != "episode_metadata"}


def describe(
    path: str, *, source_no: int = 0, episodes_per_unit: int = DEFAULT_EPISODES_PER_UNIT
) -> SourceDescription:
    """The log directories below ``path``, their specs and work units."""
    log_dirs = find_log_dirs(path)
    if not log_dirs:
        raise SourceFormatError(f"{path}: no envlogger log directory ({METADATA_FILE}) below it")
    units: list[ConvertUnit] = []
    specs: dict[str, Any] | None = None
    first_dir = ""
    step_spec: dict[str, Any] | None = None
    episode_spec: dict[str, Any] | None = None
    user_metadata: list[Any] = []
    sessions: list[dict[str, Any]] = []  # what rlds_hub's Recorder wrote about each log
    rates: dict[str, float] = {}  # log directory -> the control rate its metadata says
    for part_no, log_dir in enumerate(log_dirs):
        with _open(log_dir) as reader:
            dir_specs = {
                "observation": reader.observation_spec(),
                "action": reader.action_spec(),
                "reward": reader.reward_spec(),
                "discount": reader.discount_spec(),
            }
            num_episodes = len(reader.episodes)
            meta = reader.metadata() or {}
            user_metadata.append({k: v for k, v in meta.items() if k not in _NOT_USER_KEYS})
            sessions += _recorded_sessions(meta, log_dir)
            rate = log_rate(meta, log_dir)
            if rate is not None:
                rates[log_dir] = rate
            if num_episodes and step_spec is None:
                try:
                    episode = list(reader.episodes[0])
                    metadata = reader.episode_metadata()[0]
                except Exception as e:  # a damaged file: envlogger fails on the steps
                    raise SourceFormatError(
                        f"{log_dir}, episode 0: cannot be read ({type(e).__name__}: {e}); "
                        "a log file is damaged or truncated"
                    ) from e
                step_spec = {
                    k: infer_spec(v, k) for k, v in _step_metadata(episode[0].custom_data).items()
                }
                values = _episode_metadata_value(metadata)
                episode_spec = {k: infer_spec(v, k) for k, v in values.items()}
                _fill_missing_specs(dir_specs, episode, log_dir)
        if specs is None:
            specs, first_dir = dir_specs, log_dir
        else:
            _check_same_specs(specs, dir_specs, first_dir, log_dir)
        files = tuple(sorted(os.path.join(d, n) for d, _, names in os.walk(log_dir) for n in names))
        for start, count in even_ranges(num_episodes, episodes_per_unit):
            units.append(
                ConvertUnit(
                    (source_no, part_no, start), log_dir, start, count, files if start == 0 else ()
                )
            )
    assert specs is not None
    reader = EnvloggerReader(path)
    return SourceDescription(
        format="envlogger",
        path=path,
        observation_spec=specs["observation"],
        action_spec=specs["action"],
        reward_spec=specs["reward"],
        discount_spec=specs["discount"],
        step_metadata_spec=step_spec or {},
        episode_metadata_spec=episode_spec or {},
        layout="rlds",
        units=units,
        metadata={
            "log_dirs": [os.path.relpath(d, path) for d in log_dirs],
            "envlogger_metadata": _json_safe(user_metadata),
            **_provenance(sessions),
            **_fps(rates),
        },
        name=os.path.basename(os.path.normpath(path)),
        reader=reader,
    )


def _recorded_sessions(meta: dict[str, Any], log_dir: str) -> list[dict[str, Any]]:
    """The sessions rlds_hub's Recorder stored in a log's metadata (none: envlogger alone)."""
    try:
        recorded = recorded_provenance(meta)
    except MetadataError as e:
        raise SourceFormatError(f"{log_dir}: {e}") from None
    return [s.to_json() for s in recorded.sessions or ()] if recorded is not None else []


def log_rate(meta: dict[str, Any], log_dir: str) -> float | None:
    """The control rate a log's metadata says (steps per second), or None: the ``fps``
    rlds_hub's Recorder stored in its provenance, else the user's own ``fps`` key."""
    try:
        recorded = recorded_provenance(meta)
    except MetadataError as e:
        raise SourceFormatError(f"{log_dir}: {e}") from None
    if recorded is not None and recorded.extra.get("fps") is not None:
        value, where = recorded.extra["fps"], f"{PROVENANCE_KEY}.fps"
    elif meta.get("fps") is not None:
        value, where = meta["fps"], "fps"
    else:
        return None
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if not number or not math.isfinite(float(value)) or float(value) <= 0:
        raise SourceFormatError(
            f"{log_dir}: the log metadata's {where} is {value!r}, not a positive number of "
            "steps per second; fix the recording's metadata or leave the key out"
        )
    value = float(value)
    return int(value) if value == int(value) else value


def _fps(rates: dict[str, float]) -> dict[str, Any]:
    """``{"fps": rate}`` when the logs that say a rate agree (nothing when none says one)."""
    found = sorted(set(rates.values()))
    if not found:
        return {}
    if len(found) > 1:
        listed = ", ".join(f"{d}: {r}" for d, r in rates.items())
        raise SourceFormatError(
            f"the log directories were recorded at different control rates ({listed}); "
            "convert them separately"
        )
    return {"fps": found[0]}


def _provenance(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """The recorded environment, policy and seed (the first session's) and every session,
    for the output's ``metadata.json``; nothing for logs rlds_hub did not record."""
    if not sessions:
        return {}
    first = sessions[0]
    return {
        "env_name": first.get("env_name"),
        "policy": first.get("policy"),
        "seed": first.get("seed"),
        "sessions": sessions,
    }


def _fill_missing_specs(specs: dict[str, Any], episode: Sequence[Any], log_dir: str) -> None:
    """Specs envlogger did not record, inferred from the first episode's values."""
    later = episode[1] if len(episode) > 1 else None
    for key in ("observation", "action", "reward", "discount"):
        if specs[key] is not None:
            continue
        if key == "observation":
            value = episode[0].timestep.observation
        elif later is None:
            raise SourceFormatError(
                f"{log_dir}: no {key}_spec in the log and no step to infer it from"
            )
        else:
            value = later.action if key == "action" else getattr(later.timestep, key)
        specs[key] = infer_spec(value, key)


def _check_same_specs(
    expected: dict[str, Any], actual: dict[str, Any], first: str, other: str
) -> None:
    differences = []
    for key in ("observation", "action", "reward", "discount"):
        differences += spec_differences(spec_to_json(expected[key]), spec_to_json(actual[key]), key)
    if differences:
        raise SourceFormatError(
            f"the log directories {first} and {other} have different specs:\n  "
            + "\n  ".join(differences)
            + "\nconvert them separately"
        )


def _json_safe(value: Any) -> Any:
    from rlds_hub.storage.episode_index import json_safe

    try:
        import json

        return json.loads(json.dumps(value, default=json_safe))
    except (TypeError, ValueError):
        return repr(value)


class EnvloggerReader:
    """Reads the episodes of a unit (one log directory's episode range)."""

    def __init__(self, root: str, fast: bool = True):
        self.root = root
        self.fast = fast  # decode with envlogger_codec (False: envlogger.Reader's own path)
        self._plan: Plan | None = None
        self._readers: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "fast": self.fast, "_plan": self._plan, "_readers": {}}

    def bind(self, plan: Plan) -> None:
        """The output's plan (for the zero-filled last action of 1-step episodes)."""
        self._plan = plan

    def _reader(self, log_dir: str) -> Any:
        reader = self._readers.get(log_dir)
        if reader is None:
            reader = _open(log_dir)
            self._readers = {log_dir: reader}  # one open log at a time
            self._metadata = reader.episode_metadata()
        return reader

    def episodes(self, unit: ConvertUnit) -> Iterator[tuple[int, dict[str, Any], str]]:
        reader = self._reader(unit.part)
        for index in range(unit.first, unit.first + unit.count):
            where = f"{unit.part}, episode {index}"
            try:
                steps = episode_steps(reader, index) if self.fast else None
                if steps is None:
                    steps = list(reader.episodes[index])  # the sequence decodes on access
            except Exception as e:  # riegeli errors on corrupt or truncated files
                raise SourceFormatError(
                    f"{where}: cannot be read ({type(e).__name__}: {e}); "
                    "a log file is damaged or truncated"
                ) from e
            if not steps:
                raise SourceFormatError(f"{where}: the episode has no steps")
            columns = self.columns(steps, where)
            for key, value in flatten_nested(
                _episode_metadata_value(self._metadata[index]), ""
            ).items():
                columns[key] = value
            yield index, columns, where

    def columns(self, steps: Sequence[Any], where: str) -> dict[str, Any]:
        """One episode's step columns (see the module docstring for the alignment)."""
        n = len(steps)
        out = stack_steps([s.timestep.observation for s in steps], f"{_STEPS}/observation")
        later = steps[1:]
        for name, values in (
            ("action", [s.action for s in later]),
            ("reward", [s.timestep.reward for s in later]),
            ("discount", [s.timestep.discount for s in later]),
        ):
            prefix = f"{_STEPS}/{name}"
            if values:
                for key, column in stack_steps(values, prefix).items():
                    out[key] = np.concatenate([column, np.zeros_like(column[:1])])
            else:
                out.update(self._zeros(prefix, where))
        out.update(stack_steps([_step_metadata(s.custom_data) for s in steps], _STEPS))
        final = steps[-1].timestep
        terminated = bool(final.last()) and all(
            np.all(np.asarray(d) == 0) for d in flatten_nested(final.discount, "d").values()
        )
        out.update(rlds_flags(n, terminated))
        return out

    def _zeros(self, prefix: str, where: str) -> dict[str, np.ndarray]:
        if self._plan is None:
            raise EpisodeContentError(f"{where}: a one-step episode needs the output's plan")
        return {
            leaf.key: np.zeros((1, *leaf.shape), leaf.dtype)
            for leaf in self._plan
            if leaf.key == prefix or leaf.key.startswith(prefix + "/")
        }
