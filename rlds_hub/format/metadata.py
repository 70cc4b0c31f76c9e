"""The dataset-level metadata (``metadata.json``, TFDS's ``info.metadata``) as typed values.

One home for its schema: the recorder and the Beam jobs build a :class:`DatasetMetadata` and
write ``to_json()``; every reader parses ``from_json()`` and reads attributes, not string
keys. ``from_json(data).to_json() == data`` for every file rlds_hub (or anyone) wrote: keys
this model does not know are kept in ``extra``, and known keys stored as JSON ``null`` are
remembered in ``nulls``, so nothing is dropped. A known key of the wrong type raises
:class:`MetadataError` naming it. No TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from rlds_hub.format.specs import spec_to_json

ENV_SPEC_KEYS = ("observation", "action", "reward", "discount")
METADATA_SPEC_KEYS = ("step_metadata", "episode_metadata")


class MetadataError(ValueError):
    """``metadata.json`` holds a known key with a value of the wrong type."""


def env_specs_json(
    observation: Any,
    action: Any,
    reward: Any,
    discount: Any,
    *,
    step_metadata: Any = None,
    episode_metadata: Any = None,
) -> dict[str, Any]:
    """The ``specs`` entry of ``metadata.json``: each dm_env spec as JSON (bounds included),
    the metadata specs only when given and non-empty."""
    specs = {
        "observation": spec_to_json(observation),
        "action": spec_to_json(action),
        "reward": spec_to_json(reward),
        "discount": spec_to_json(discount),
    }
    for key, spec in zip(METADATA_SPEC_KEYS, (step_metadata, episode_metadata), strict=True):
        if spec:
            specs[key] = spec_to_json(spec)
    return specs


# ---- value parsers: (value, key path) -> value, or MetadataError ------------------------


def _expect(kind: type, what: str) -> Callable[[Any, str], Any]:
    def parse(value: Any, key: str) -> Any:
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise MetadataError(
                f"metadata key {key!r} must be {what}, got {value!r} "
                f"({type(value).__name__}); fix or remove that key"
            )
        return value

    return parse


_str = _expect(str, "a string")
_int = _expect(int, "an integer")
_object = _expect(dict, "a JSON object")
_list = _expect(list, "a JSON list")


def _json(value: Any, key: str) -> Any:
    return value


def _records(cls: type) -> Callable[[Any, str], tuple[Any, ...]]:
    def parse(value: Any, key: str) -> tuple[Any, ...]:
        return tuple(cls.from_json(item, f"{key}[{i}]") for i, item in enumerate(_list(value, key)))

    return parse


def _record(cls: type) -> Callable[[Any, str], Any]:
    return lambda value, key: cls.from_json(value, key)


class _JsonRecord:
    """A JSON object with known keys (typed fields, None when absent), ``extra`` (unknown
    keys, kept verbatim) and ``nulls`` (known keys stored as ``null``)."""

    extra: dict[str, Any]
    nulls: frozenset[str]

    @classmethod
    def from_json(cls, data: Any, key: str = "metadata") -> Any:
        """Parses ``data``; :class:`MetadataError` names ``key`` (its path) when malformed."""
        if not isinstance(data, Mapping):
            what = "the metadata" if key == "metadata" else f"metadata key {key!r}"
            raise MetadataError(f"{what} must be a JSON object, got {type(data).__name__}")
        known = _PARSERS[cls]
        values: dict[str, Any] = {}
        nulls = set()
        extra = {}
        for name, value in data.items():
            parse = known.get(name)
            if parse is None:
                extra[name] = value
            elif value is None:
                nulls.add(name)
            else:
                path = name if key == "metadata" else f"{key}.{name}"
                values[name] = parse(value, path)
        return cls(**values, extra=extra, nulls=frozenset(nulls))

    def to_json(self) -> dict[str, Any]:
        """The JSON object (known keys in a fixed order, then the unknown ones)."""
        out: dict[str, Any] = {}
        for name in _PARSERS[type(self)]:
            value = getattr(self, name)
            if value is not None:
                out[name] = _to_json(value)
            elif name in self.nulls:
                out[name] = None
        out.update(self.extra)
        return out


def _to_json(value: Any) -> Any:
    if isinstance(value, _JsonRecord):
        return value.to_json()
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Session(_JsonRecord):
    """One recording session (one ``Recorder``): its environment, policy, seed, host."""

    started: str | None = None
    split: str | None = None
    env_name: str | None = None
    policy: str | None = None
    seed: int | None = None
    rlds_hub_version: str | None = None
    host: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    nulls: frozenset[str] = dataclasses.field(default=frozenset(), repr=False)


@dataclasses.dataclass(frozen=True)
class Source(_JsonRecord):
    """What ``convert`` read: the source format and path, the env name it names, and its
    own metadata (Minari's ``metadata.json``, D4RL's ``metadata/*``); the format's other
    facts (log directories, HDF5 attributes, ...) are in ``extra``."""

    format: str | None = None
    path: str | None = None
    env_name: str | None = None
    metadata: Any = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    nulls: frozenset[str] = dataclasses.field(default=frozenset(), repr=False)


@dataclasses.dataclass(frozen=True)
class JobProvenance(_JsonRecord):
    """How a Beam job made this dataset: the job, its arguments, its inputs (with the
    checksums read), the runner, and the input's own provenance (``previous``)."""

    job: str | None = None
    arguments: dict[str, Any] | None = None
    sources: list[Any] | None = None
    rlds_hub_version: str | None = None
    time: str | None = None
    runner: dict[str, Any] | None = None
    previous: JobProvenance | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    nulls: frozenset[str] = dataclasses.field(default=frozenset(), repr=False)


@dataclasses.dataclass(frozen=True)
class MergedInput(_JsonRecord):
    """One input of ``merge``: its path, name and metadata."""

    path: str | None = None
    name: str | None = None
    metadata: DatasetMetadata | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    nulls: frozenset[str] = dataclasses.field(default=frozenset(), repr=False)


@dataclasses.dataclass(frozen=True)
class DatasetMetadata(_JsonRecord):
    """``metadata.json``. Every field is None when the file does not have that key (a
    TFDS or Open X-Embodiment dataset has no ``metadata.json`` at all: every field None).

    Fields: ``rlds_hub_version`` and ``created`` (who wrote it, when, ISO 8601 UTC);
    ``env_name`` / ``policy`` / ``seed`` (the first recording session's, or the job's);
    ``seeds`` (how the record job seeds episodes); ``specs`` (dm_env specs as JSON, see
    :func:`env_specs_json`); ``image_encoding`` ("png" or "raw"); ``layout`` ("rlds" or
    "oxe", the last step's layout); ``user`` (the recorder's ``metadata=``); ``sessions``
    (one :class:`Session` per recording session); ``source`` (what ``convert`` read);
    ``provenance`` (the Beam job that wrote it); ``merged_from`` (``merge``'s inputs).
    """

    rlds_hub_version: str | None = None
    created: str | None = None
    env_name: str | None = None
    policy: str | None = None
    seed: int | None = None
    seeds: str | None = None
    specs: dict[str, Any] | None = None
    image_encoding: str | None = None
    layout: str | None = None
    user: dict[str, Any] | None = None
    sessions: tuple[Session, ...] | None = None
    source: Source | None = None
    provenance: JobProvenance | None = None
    merged_from: tuple[MergedInput, ...] | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    nulls: frozenset[str] = dataclasses.field(default=frozenset(), repr=False)

    @classmethod
    def from_json(cls, data: Any, key: str = "metadata") -> DatasetMetadata:
        """Parses ``metadata.json`` content; :class:`MetadataError` names a malformed key."""
        return super().from_json(data, key)

    @property
    def recorded_envs(self) -> list[str]:
        """The environments of the recording sessions, in order, each once (a dataset
        without sessions: the top-level ``env_name``)."""
        envs = [s.env_name for s in self.sessions or () if s.env_name]
        if not envs and self.env_name:
            envs = [self.env_name]
        return list(dict.fromkeys(envs))

    @property
    def session_envs(self) -> list[str | None]:
        """Each session's environment (the first falls back to the top-level ``env_name``)."""
        return [
            s.env_name or (self.env_name if i == 0 else None)
            for i, s in enumerate(self.sessions or ())
        ]

    @property
    def seeds_used(self) -> list[int]:
        """The integer seeds of the recording sessions (without sessions: the top-level)."""
        holders = self.sessions or (self,)
        return [s.seed for s in holders if s.seed is not None]


# The known keys of each record, in the order they are written, with their parsers.
_PARSERS: dict[type, dict[str, Callable[[Any, str], Any]]] = {
    Session: {
        "started": _str,
        "split": _str,
        "env_name": _str,
        "policy": _str,
        "seed": _int,
        "rlds_hub_version": _str,
        "host": _str,
    },
    Source: {
        "format": _str,
        "path": _str,
        "env_name": _str,
        "metadata": _json,
    },
    JobProvenance: {
        "job": _str,
        "arguments": _object,
        "sources": _list,
        "rlds_hub_version": _str,
        "time": _str,
        "runner": _object,
        "previous": _record(JobProvenance),
    },
    MergedInput: {
        "path": _str,
        "name": _str,
        "metadata": _record(DatasetMetadata),
    },
    DatasetMetadata: {
        "rlds_hub_version": _str,
        "created": _str,
        "env_name": _str,
        "policy": _str,
        "seed": _int,
        "seeds": _str,
        "specs": _object,
        "image_encoding": _str,
        "layout": _str,
        "user": _object,
        "sessions": _records(Session),
        "source": _record(Source),
        "provenance": _record(JobProvenance),
        "merged_from": _records(MergedInput),
    },
}
