"""The Recorder's options as two values, after envlogger's ``EnvLogger(env, step_fn,
episode_fn, metadata, backend)``: how the episodes are written (:class:`WriterOptions`) and
what is said about where they came from (:class:`Provenance`).

``Recorder(env, data_dir, ...)`` still takes every option as a keyword; :func:`fold` turns
those keywords into these two values, in this one place.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, Literal

from rlds_hub.format.features import IMAGE_ENCODINGS, ImageEncoding
from rlds_hub.storage import dataset_files
from rlds_hub.storage.writer import (
    DEFAULT_MAX_BYTES_PER_SHARD,
    DEFAULT_MAX_EPISODES_PER_SHARD,
    Durability,
)

FileFormat = Literal["tfrecord", "array_record", "riegeli"]
# The RLDS writer's shard formats, and envlogger's own
FILE_FORMATS: tuple[str, ...] = (*dataset_files.FILE_FORMATS, "riegeli")
DURABILITIES: tuple[str, ...] = typing.get_args(Durability)


@dataclasses.dataclass(frozen=True)
class WriterOptions:
    """How the episodes are written.

    Attributes:
      name: TFDS dataset name (default: from the directory name).
      split: the split to record into.
      file_format: "tfrecord", "array_record" (rlds_hub's RLDS writer) or "riegeli"
        (envlogger's own Riegeli backend); :attr:`backend` names the writer it selects.
      max_episodes_per_shard / max_bytes_per_shard: shard size limits (whichever first).
      durability: "process" (each completed episode survives the process dying) or "os"
        (also power loss); None: the backend's default ("process" for the RLDS writer).
      image_encoding: "png" or "raw" for uint8 images; None: the backend's default ("png").
      step_metadata_spec / episode_metadata_spec: dm_env specs of ``step_fn`` /
        ``episode_fn`` values (default: inferred from the first value).
      save_unfinished_episodes: store an episode that ``reset`` or ``close`` interrupts
        (with at least one transition) as truncated, instead of dropping it.
      allow_env_change: append to a dataset recorded from another environment.
    """

    name: str | None = None
    split: str = "train"
    file_format: FileFormat = "tfrecord"
    max_episodes_per_shard: int | None = DEFAULT_MAX_EPISODES_PER_SHARD
    max_bytes_per_shard: int | None = DEFAULT_MAX_BYTES_PER_SHARD
    durability: Durability | None = None
    image_encoding: ImageEncoding | None = None
    step_metadata_spec: Mapping[str, Any] | None = None
    episode_metadata_spec: Mapping[str, Any] | None = None
    save_unfinished_episodes: bool = True
    allow_env_change: bool = False

    def __post_init__(self) -> None:
        _one_of("file_format", self.file_format, FILE_FORMATS)
        if self.durability is not None:
            _one_of("durability", self.durability, DURABILITIES)
        if self.image_encoding is not None:
            _one_of("image_encoding", self.image_encoding, IMAGE_ENCODINGS)

    @property
    def backend(self) -> Literal["rlds", "riegeli"]:
        """The writer behind the recorder: rlds_hub's RLDS writer, or envlogger's Riegeli."""
        return "riegeli" if self.file_format == "riegeli" else "rlds"


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where the episodes came from, stored with the dataset (each recording session's
    entry in ``metadata.json``; in Riegeli logs, envlogger's metadata).

    Attributes:
      env_name: the environment's name (default: its class name).
      policy_name: the policy that acted.
      seed: the seed of the environment (and policy).
      metadata: your JSON-serialisable dataset-level metadata (``metadata.json``'s ``user``).
    """

    env_name: str | None = None
    policy_name: str | None = None
    seed: int | None = None
    metadata: Mapping[str, Any] | None = None


def fold(
    options: WriterOptions | None,
    provenance: Provenance | None,
    keywords: Mapping[str, Any],
) -> tuple[WriterOptions, Provenance]:
    """The two values from the Recorder's keywords: each keyword goes to the value that has
    a field of its name. A keyword left at its default defers to a value passed whole; a
    keyword set as well as its value object is refused (say it once)."""
    values: list[Any] = []
    for cls, given in ((WriterOptions, options), (Provenance, provenance)):
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        if given is not None and not isinstance(given, cls):
            raise TypeError(f"expected a {cls.__name__}, got {type(given).__name__}")
        changes = {
            key: value
            for key, value in keywords.items()
            if key in fields and not _same(value, fields[key])
        }
        if given is None:
            values.append(cls(**changes))
        elif changes:
            raise TypeError(
                f"{', '.join(sorted(changes))} given both as keyword(s) and in the "
                f"{cls.__name__}; give each option once (put it in the {cls.__name__})"
            )
        else:
            values.append(given)
    return values[0], values[1]


def _same(value: Any, default: Any) -> bool:
    return value is default or (type(value) is type(default) and value == default)


def _one_of(option: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{option} must be one of {choices}, got {value!r}")
