"""Finding a dataset directory by name: rlds_hub's data directory, then TFDS's; and
:func:`as_dataset`, the one resolver every reader uses (path, name, opened dataset or
:class:`~rlds_hub.storage.selection.Selection`).

TFDS lays a dataset out as ``<data_dir>/<name>/<version>`` or, for a builder with configs,
``<data_dir>/<name>/<config>/<version>`` (and records the default config in
``<data_dir>/<name>/.config/metadata.json``). A name may be written as TFDS writes it:

- ``name`` — the newest version; with configs, the default config (TFDS's
  ``.config/metadata.json``), or the only one;
- ``name/config`` — that config's newest version;
- ``name/version``, ``name/config/version``, ``name:version``, ``name/config:version``.

A local path is used as given, except that a directory in one of these layouts with
version-named folders (``1.0.0``; a name's directory, which holds no dataset itself)
resolves as its name would.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from rlds_hub.storage import dataset_files, files
from rlds_hub.storage.dataset import RLDSDataset, open_dataset
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.selection import Selection

DATA_DIR_ENV = "RLDS_HUB_DATA_DIR"
DEFAULT_DATA_DIR = "~/rlds_hub_data"
TFDS_DATA_DIR_ENV = "TFDS_DATA_DIR"
DEFAULT_TFDS_DATA_DIR = "~/tensorflow_datasets"
# Where TFDS notes a dataset's default config (tfds.core.dataset_builder).
DEFAULT_CONFIG_FILE = os.path.join(".config", "metadata.json")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def data_dirs() -> list[str]:
    """Where bare dataset names are looked up: $RLDS_HUB_DATA_DIR (or ~/rlds_hub_data), then
    the TFDS data directory ($TFDS_DATA_DIR or ~/tensorflow_datasets)."""
    return [
        os.path.expanduser(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR)),
        os.path.expanduser(os.environ.get(TFDS_DATA_DIR_ENV, DEFAULT_TFDS_DATA_DIR)),
    ]


def resolve(path_or_name: str | os.PathLike) -> str:
    """The dataset directory for a path, or for a name found in :func:`data_dirs`.

    Raises:
      DatasetError: no such name (the places searched are listed), a version that does not
        exist (the ones that do are listed), or several configs and no default (they are
        listed, with how to pick one).
    """
    text = os.fspath(path_or_name)
    if files.is_remote(text):
        return text
    if os.path.isabs(text) or files.exists(text):
        strict = _is_name_directory(text, strict=True)
        return _descend(text, text, None, strict=True) if strict else text
    base, _, version = text.partition(":")
    searched = []
    for root in data_dirs():
        candidate = os.path.join(root, base)
        searched.append(candidate)
        if files.isdir(candidate) and (
            _is_dataset(candidate) or _is_name_directory(candidate) or version
        ):
            return _descend(candidate, text, version or None)
    raise DatasetError(
        f"no dataset {text!r}: not a path, and not found in {', '.join(searched)} "
        f"(set ${DATA_DIR_ENV} or pass the dataset directory)"
    )


def as_dataset(
    source: Any, function: str = "this function", *, selection: bool = True
) -> RLDSDataset:
    """``source`` itself if already opened, a Selection's dataset, else the dataset at that
    path or name (see :func:`resolve`). ``selection=False`` refuses a Selection, for
    callers that take their own split and episodes (its episodes would be ignored).

    Raises:
      DatasetError: not a dataset directory, or no such name.
      TypeError: ``source`` is not a path, a name, an opened dataset or a Selection (e.g. a
        ``tf.data.Dataset``: the message says what to pass instead); ``function`` names
        the caller in the message.
    """
    if isinstance(source, RLDSDataset):
        return source
    if isinstance(source, Selection) and selection:
        return source.dataset
    if isinstance(source, Selection):
        raise TypeError(
            f"{function} takes its own split and episodes: pass the dataset (a path, a name "
            "or selection.dataset), not a Selection"
        )
    if not isinstance(source, str | os.PathLike):
        raise TypeError(wrong_source_message(source, function))
    return open_dataset(resolve(source))


def wrong_source_message(source: Any, function: str) -> str:
    """The error for passing something that is not a dataset path to a reader."""
    kind = type(source).__name__
    if "Dataset" in kind and hasattr(source, "element_spec"):
        return (
            f"{function} reads a dataset from disk: pass its path or name (or an opened "
            f"dataset or a Selection), not a tf.data.Dataset ({kind}). For episodes already "
            "in tf.data, use rlds_hub.transforms.transitions / windows instead."
        )
    return (
        f"{function} takes a dataset path or name, an opened RLDSDataset or a Selection; got {kind}"
    )


def _descend(directory: str, text: str, version: str | None, *, strict: bool = False) -> str:
    """The dataset directory a name's directory stands for (see the module docstring);
    ``strict``: only version-named folders count as versions."""
    if version is not None:
        target = os.path.join(directory, version)
        if _is_dataset(target):
            return target
        available = _versions(directory)
        raise DatasetError(
            f"{text!r}: {directory} has no version {version}; "
            + (f"it has {', '.join(available)}" if available else "it holds no version")
        )
    if _is_dataset(directory):
        return directory
    versions = _versions(directory, strict)
    if versions:
        return os.path.join(directory, versions[-1])
    configs = _configs(directory, strict)
    if len(configs) == 1:
        return _descend(os.path.join(directory, configs[0]), text, None, strict=strict)
    default = _default_config(directory)
    if default in configs:
        return _descend(os.path.join(directory, default), text, None, strict=strict)
    raise DatasetError(
        f"{text!r} has several configs in {directory} and no default one "
        f"({DEFAULT_CONFIG_FILE} names none): {', '.join(configs)}; pass NAME/CONFIG, e.g. "
        f"'{text.rstrip('/')}/{configs[0]}'"
    )


def _is_dataset(directory: str) -> bool:
    return files.exists(os.path.join(directory, dataset_files.DATASET_INFO))


def _children(directory: str) -> list[str]:
    if not files.isdir(directory):
        return []
    return sorted(
        n for n in files.listdir(directory) if not n.startswith(".") and "incomplete" not in n
    )


def _versions(directory: str, strict: bool = False) -> list[str]:
    """Subdirectories holding a dataset (``strict``: named like ``1.0.0``), oldest version
    first."""
    found = [
        n
        for n in _children(directory)
        if _is_dataset(os.path.join(directory, n)) and (not strict or _VERSION.match(n))
    ]
    return sorted(found, key=_version_key)


def _configs(directory: str, strict: bool = False) -> list[str]:
    """Subdirectories that hold versions (TFDS's ``<name>/<config>/<version>``)."""
    return [
        n
        for n in _children(directory)
        if not _is_dataset(os.path.join(directory, n))
        and _versions(os.path.join(directory, n), strict)
    ]


def _is_name_directory(directory: str, strict: bool = False) -> bool:
    """A directory in TFDS's name layout: no dataset or shards of its own, versions or
    configs below it (``strict``: version-named folders only)."""
    if not files.isdir(directory) or _is_dataset(directory):
        return False
    names = files.listdir(directory)
    own = {dataset_files.FEATURES, dataset_files.METADATA, dataset_files.EPISODE_INDEX}
    if any(dataset_files.is_shard_name(n) or n in own for n in names):
        return False  # a damaged dataset: opening it says so
    return bool(_versions(directory, strict) or _configs(directory, strict))


def _default_config(directory: str) -> str | None:
    path = os.path.join(directory, DEFAULT_CONFIG_FILE)
    if not files.exists(path):
        return None
    try:
        value = json.loads(files.read_text(path)).get("default_config_name")
    except (ValueError, AttributeError, OSError):
        return None
    return value if isinstance(value, str) else None


def _version_key(version: str) -> tuple:
    if _VERSION.match(version):
        return (1, *(int(p) for p in version.split(".")))
    return (0, version)
