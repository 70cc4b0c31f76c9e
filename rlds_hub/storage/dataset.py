"""Opening an RLDS dataset directory for reading: the one place its metadata is read.

``open_dataset(path)`` reads the TFDS files (``dataset_info.json``, ``features.json``)
itself, without TensorFlow, resolves every split's shard files the way TFDS names them, and
adds what rlds_hub keeps beside them: the dataset-level metadata (``metadata.json``) and the
episode index (``episodes.jsonl``). The loaders, the inspection commands, the pipelines, the
service and the learners all start here. ``RLDSDataset.builder`` gives the TFDS builder for
code that wants ``tf.data`` (it imports TensorFlow on first use).

Nothing a dataset reads lies outside its directory: shard templates are relative without
``..``, and every local file is resolved and checked to be a regular file inside the
directory (resolved when the dataset was opened), again each time it is opened (see
:mod:`rlds_hub.storage.containment`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from typing import Any

from rlds_hub import rlds_types as rlds
from rlds_hub.extras import require
from rlds_hub.format.metadata import DatasetMetadata, MetadataError
from rlds_hub.format.plan import Plan, PlanError
from rlds_hub.storage import containment, dataset_files, files
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.episode_index import read_episode_index

_DEFAULT_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
# Split names as writers use them; a split name is part of every shard's file name.
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SUFFIXES = {"tfrecord": "tfrecord", "array_record": "array_record"}


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    """One split: its shards (path and episode count, in reading order) and sizes."""

    name: str
    shard_paths: tuple[str, ...]
    shard_lengths: tuple[int, ...]
    num_bytes: int

    @property
    def num_episodes(self) -> int:
        return sum(self.shard_lengths)

    @property
    def nonempty_shards(self) -> list[tuple[str, int]]:
        """(path, episodes) of the shards a reader opens (0-length shards are skipped)."""
        return [(p, n) for p, n in zip(self.shard_paths, self.shard_lengths, strict=True) if n]


@dataclasses.dataclass
class RLDSDataset:
    """A readable RLDS dataset directory (see :func:`open_dataset`)."""

    path: str
    info: dict[str, Any]
    features_json: dict[str, Any]
    plan: Plan
    metadata: dict[str, Any]
    splits: dict[str, SplitInfo]
    cache: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    # The resolved directory every local file must lie in (None for a remote dataset).
    real_path: str | None = None

    @property
    def name(self) -> str:
        return str(self.info.get("name", ""))

    @property
    def version(self) -> str:
        return str(self.info.get("version", ""))

    @property
    def file_format(self) -> str:
        return self.info.get("fileFormat") or "tfrecord"

    @property
    def step_fields(self) -> list[str]:
        """Top-level step field names ("action", "discount", "is_first", ...)."""
        return self.plan.step_fields

    @property
    def num_episodes(self) -> int:
        return sum(s.num_episodes for s in self.splits.values())

    def split(self, name: str) -> SplitInfo:
        if name not in self.splits:
            raise DatasetError(
                f"{self.path} has no split {name!r}; its splits are {sorted(self.splits)}"
            )
        return self.splits[name]

    @functools.cached_property
    def dataset_metadata(self) -> DatasetMetadata:
        """``metadata`` (the raw ``metadata.json``) parsed; every field None without one."""
        try:
            return DatasetMetadata.from_json(self.metadata)
        except MetadataError as e:
            raise DatasetError(f"{files.join(self.path, dataset_files.METADATA)}: {e}") from None

    @functools.cached_property
    def builder(self) -> Any:
        """The TFDS builder of this directory (imports TensorFlow: the ``tf`` extra)."""
        tfds = require("tensorflow_datasets", "tf", "RLDSDataset.builder")

        try:
            return tfds.builder_from_directory(self.path)
        except Exception as e:  # TFDS raises many types for broken metadata
            raise DatasetError(f"TFDS cannot load {self.path}: {e}") from e

    @functools.cached_property
    def features(self) -> Any:
        """The TFDS ``FeaturesDict`` (imports TensorFlow). A remote dataset's comes from its
        ``features.json`` as read (TensorFlow's gfile has no ``s3://``)."""
        if files.is_remote(self.path):
            tfds = require("tensorflow_datasets", "tf", "RLDSDataset.features")
            return tfds.features.FeatureConnector.from_json(self.features_json)
        return self.builder.info.features

    @functools.cached_property
    def episode_index(self) -> list[dict[str, Any]] | None:
        """Rows of ``episodes.jsonl`` for the published episodes, or None if absent."""
        path = _own_file(self.path, dataset_files.EPISODE_INDEX, self.real_path)
        if path is None:
            return None
        counts = {name: s.num_episodes for name, s in self.splits.items()}
        return read_episode_index(files.read_bytes(path, within=self.real_path), counts)

    def episode_rows(self, split: str) -> list[dict[str, Any]] | None:
        """Index rows of ``split`` in episode order; None unless every episode has a row."""
        rows = self.episode_index
        if rows is None:
            return None
        selected = [r for r in rows if r.get("split") == split]
        return selected if len(selected) == self.split(split).num_episodes else None

    def listed_files(self) -> set[str]:
        """Names of the files this dataset consists of (metadata and listed shards)."""
        names = {dataset_files.DATASET_INFO, dataset_files.FEATURES}
        for name in (
            dataset_files.METADATA,
            dataset_files.EPISODE_INDEX,
            dataset_files.CHECKSUMS,
            dataset_files.STATISTICS,
        ):
            if _own_file(self.path, name, self.real_path) is not None:
                names.add(name)
        for split in self.splits.values():
            names.update(os.path.basename(p) for p, _ in split.nonempty_shards)
        return names


def open_dataset(
    path: str | os.PathLike, *, within: str | os.PathLike | None = None
) -> RLDSDataset:
    """Opens the RLDS dataset whose ``dataset_info.json`` is in ``path`` (no TensorFlow).

    Args:
      within: a resolved directory (e.g. a served root) the dataset's directory must lie in
        once links are resolved; a service passes it so a directory swapped for a link to
        elsewhere is refused.

    Raises:
      DatasetError: ``path`` does not exist, is not a dataset directory (saying what is
        missing and how to recover), its features are not RLDS episodes, or a file it lists
        lies outside its directory or is not a regular file.
    """
    path_str = os.fspath(path)
    real = None
    if not files.is_remote(path_str):
        real = containment.real_directory(path_str)
        if within is not None and not containment.is_inside(real, os.fspath(within)):
            raise containment.OutsideDataset(
                f"{path_str} is not inside {os.fspath(within)} once links are resolved; "
                "a dataset directory may not be a link to elsewhere"
            )
    if files.is_remote(path_str):
        info, features_json, metadata = _read_remote_files(path_str)
    else:
        info, features_json, metadata = _read_local_files(path_str, real)
    try:
        plan = Plan.from_features_json(features_json)
    except PlanError as e:
        raise DatasetError(f"{files.join(path_str, dataset_files.FEATURES)}: {e}") from e
    if not plan.step_leaves:
        raise DatasetError(
            f"{path_str} is a TFDS dataset but not RLDS: its features have no "
            f"'{rlds.STEPS}' dataset of steps"
        )
    splits = _splits(path_str, info, real)
    return RLDSDataset(path_str, info, features_json, plan, metadata, splits, real_path=real)


def _read_local_files(path_str: str, real: str | None) -> tuple[Any, Any, Any]:
    """``dataset_info.json``, ``features.json`` and ``metadata.json`` (``{}`` if absent)."""
    if not files.exists(path_str):
        raise DatasetError(f"{path_str} does not exist")
    if not files.isdir(path_str):
        raise DatasetError(f"{path_str} is a file; pass the dataset directory")
    info_path = _own_file(path_str, dataset_files.DATASET_INFO, real)
    if info_path is None:
        _missing_info(path_str)
    info = _read_json(info_path, real)
    features_path = _own_file(path_str, dataset_files.FEATURES, real)
    if features_path is None:
        _missing_features(path_str)
    features_json = _read_json(features_path, real)
    metadata_path = _own_file(path_str, dataset_files.METADATA, real)
    metadata = _read_json(metadata_path, real) if metadata_path is not None else {}
    return info, features_json, metadata


def _read_remote_files(url: str) -> tuple[Any, Any, Any]:
    """:func:`_read_local_files` of a remote dataset: the three objects read in parallel, in
    one round trip; the directory's existence is looked at only to explain a missing one."""
    names = (dataset_files.DATASET_INFO, dataset_files.FEATURES, dataset_files.METADATA)
    info, features, metadata = files.read_optional([files.join(url, n) for n in names])
    if info is None:
        if not files.exists(url):
            raise DatasetError(f"{url} does not exist (no object has this prefix)")
        _missing_info(url)
    if features is None:
        _missing_features(url)
    return (
        _parse_json(files.join(url, names[0]), info),
        _parse_json(files.join(url, names[1]), features),
        {} if metadata is None else _parse_json(files.join(url, names[2]), metadata),
    )


def _missing_info(path_str: str) -> None:
    names = files.listdir(path_str)
    raise DatasetError(
        dataset_files.missing_info_message(path_str, names, _nested_datasets(path_str, names))
    )


def _missing_features(path_str: str) -> None:
    raise DatasetError(
        f"{path_str} has a {dataset_files.DATASET_INFO} but no {dataset_files.FEATURES} (the "
        "description of the episode features), so its episodes cannot be decoded. If rlds_hub "
        f"wrote it, `rlds-hub validate --repair {path_str}` rebuilds {dataset_files.FEATURES} "
        f"from the specs in {dataset_files.METADATA}; otherwise restore the file from the "
        "dataset's source"
    )


def _own_file(path: str, name: str, real: str | None) -> str | None:
    """``path/name`` if it exists, checked to lie inside ``real`` first (so a link out of the
    dataset is refused whether or not its target exists); None if it does not exist."""
    target = files.join(path, name)
    if real is not None:
        containment.confine(target, real)
    return target if files.exists(target) else None


def _nested_datasets(path: str, names: list[str], depth: int = 2) -> list[str]:
    """Dataset directories up to ``depth`` levels below ``path`` (for the error message)."""
    found = []
    for name in names[:200]:
        child = files.join(path, name)
        if name.startswith(".") or not files.isdir(child):
            continue
        if files.exists(files.join(child, dataset_files.DATASET_INFO)):
            found.append(child)
        elif depth > 1:
            found += _nested_datasets(child, files.listdir(child), depth - 1)
    return found


def _splits(path: str, info: dict[str, Any], real: str | None) -> dict[str, SplitInfo]:
    name = info.get("name", "")
    file_format = info.get("fileFormat") or "tfrecord"
    suffix = _SUFFIXES.get(file_format)
    if suffix is None:
        raise DatasetError(
            f"{path}: shards in the {file_format!r} format are not supported "
            f"(supported: {', '.join(_SUFFIXES)})"
        )
    splits = {}
    for number, entry in enumerate(info.get("splits", [])):
        lengths = tuple(int(n) for n in entry.get("shardLengths", []))
        template = entry.get("filepathTemplate") or _DEFAULT_TEMPLATE
        if not _SPLIT_NAME.match(str(entry.get("name", ""))):
            raise DatasetError(
                f"{files.join(path, dataset_files.DATASET_INFO)}: splits[{number}] has the split "
                f"name {entry.get('name')!r}: use letters, digits, '_', '-' and '.' (it is "
                "part of every shard's file name); fix dataset_info.json"
            )
        containment.check_template(
            str(template),
            f"{files.join(path, dataset_files.DATASET_INFO)}: splits[{number}] ({entry.get('name')!r})",
        )
        relative = [
            shard_path(template, name, entry["name"], suffix, i, len(lengths))
            for i in range(len(lengths))
        ]
        if relative:  # the dataset and split names are part of every shard's path
            containment.check_template(
                relative[0],
                f"{files.join(path, dataset_files.DATASET_INFO)}: splits[{number}] "
                f"({entry.get('name')!r}) with its dataset and split names filled in",
            )
        if real is not None:
            for shard, count in zip(relative, lengths, strict=True):
                if count:
                    containment.check_entry(os.path.join(real, shard), real)
        paths = tuple(files.join(path, shard) for shard in relative)
        splits[entry["name"]] = SplitInfo(
            entry["name"], paths, lengths, int(entry.get("numBytes", 0) or 0)
        )
    return splits


def shard_path(
    template: str, dataset: str, split: str, suffix: str, index: int, num_shards: int
) -> str:
    """The relative path of shard ``index`` under a TFDS ``filepathTemplate``."""
    digits = max(len(str(num_shards)), 5)
    number = f"{index:0{digits}d}"
    total = f"{num_shards:0{digits}d}"
    return template.format(
        DATASET=dataset,
        SPLIT=split,
        FILEFORMAT=suffix,
        SHARD_INDEX=number,
        NUM_SHARDS=total,
        SHARD_X_OF_Y=f"{number}-of-{total}",
    )


def _read_json(path: str, real: str | None) -> Any:
    return _parse_json(path, files.read_bytes(path, within=real))


def _parse_json(path: str, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(
            f"{path} is not valid JSON ({e}); the file is corrupt: restore it, or run "
            f"`rlds-hub validate --repair` on the dataset directory"
        ) from e
