"""Recording with envlogger's own Riegeli backend (``file_format="riegeli"``).

envlogger's writer has no dataset name, no splits, no byte limit per file, no image
encoding, no metadata specs and no per-episode durability, and it never appends to a
dataset: :func:`check_options` refuses each of those options instead of ignoring it, and
says where the choice is made instead (mostly ``rlds-hub convert``). The provenance (the
session's environment, policy, seed, rlds_hub version and host) is written into envlogger's
dataset metadata under :data:`PROVENANCE_KEY`, beside the user's own keys; ``convert``
reads it back into the output's ``metadata.json``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

from rlds_hub import _compat
from rlds_hub.format.metadata import DatasetMetadata
from rlds_hub.recorders.options import WriterOptions
from rlds_hub.storage.dataset_files import DatasetError, prepare_directory
from rlds_hub.storage.writer import DEFAULT_MAX_BYTES_PER_SHARD

PROVENANCE_KEY = "rlds_hub"
LOG_METADATA_FILE = "metadata.riegeli"
_TFRECORD = "or record with file_format='tfrecord'"


def refused_options(options: WriterOptions) -> list[str]:
    """Why each option the Riegeli backend cannot honour is refused (empty: none)."""
    refused = []
    if options.name is not None:
        refused.append(
            "name: envlogger's logs have no dataset name; name the dataset when you convert "
            "them (rlds-hub convert --name)"
        )
    if options.split != "train":
        refused.append(
            "split: envlogger's logs have no splits; choose the split when you convert them "
            "(rlds-hub convert --output-split)"
        )
    if options.max_bytes_per_shard not in (None, DEFAULT_MAX_BYTES_PER_SHARD):
        refused.append(
            "max_bytes_per_shard: envlogger's writer limits its files by episodes only; use "
            "max_episodes_per_shard"
        )
    if options.durability is not None:
        refused.append(
            "durability: envlogger's writer completes a log only at close() (it flushes now "
            f"and then); leave durability unset, {_TFRECORD} for per-episode durability"
        )
    if options.image_encoding is not None:
        refused.append(
            "image_encoding: envlogger stores images as arrays; choose the encoding when you "
            "convert the logs (rlds-hub convert --image-encoding)"
        )
    for key in ("step_metadata_spec", "episode_metadata_spec"):
        if getattr(options, key) is not None:
            refused.append(
                f"{key}: envlogger stores step_fn / episode_fn values as they are (convert "
                f"infers their specs); leave {key} unset, {_TFRECORD}"
            )
    if not options.save_unfinished_episodes:
        refused.append(
            "save_unfinished_episodes=False: envlogger logs every step as it happens, so an "
            "interrupted episode stays in the log (convert stores it as truncated); leave it "
            f"True, {_TFRECORD}"
        )
    if options.allow_env_change:
        refused.append(
            "allow_env_change: a Riegeli recording never appends (each Recorder writes its own "
            "log directory), so there is no environment change to allow; leave it False"
        )
    return refused


def check_options(options: WriterOptions) -> None:
    """ValueError naming every option the Riegeli backend cannot honour."""
    refused = refused_options(options)
    if refused:
        raise ValueError(
            "file_format='riegeli' (envlogger's own writer) cannot honour:\n  "
            + "\n  ".join(refused)
        )


def log_metadata(metadata: DatasetMetadata) -> dict[str, Any]:
    """envlogger's dataset metadata: the user's keys (``metadata.user``), and under
    :data:`PROVENANCE_KEY` the provenance (who recorded, when, the environment, policy, seed
    and the session; not the specs, which envlogger stores itself)."""
    user = dict(metadata.user or {})
    if PROVENANCE_KEY in user:
        raise ValueError(
            f"metadata key {PROVENANCE_KEY!r} is reserved in Riegeli recordings (rlds_hub "
            "stores the provenance there); rename that key"
        )
    provenance = dataclasses.replace(
        metadata,
        specs=None,
        image_encoding=None,
        layout=None,
        user=None,
        sessions=tuple(dataclasses.replace(s, split=None) for s in metadata.sessions or ()),
    )
    return {**user, PROVENANCE_KEY: provenance.to_json()}


def recorded_provenance(log_metadata: Mapping[str, Any] | None) -> DatasetMetadata | None:
    """The provenance a Recorder wrote into an envlogger log's metadata, or None (a log
    written by envlogger alone)."""
    entry = (log_metadata or {}).get(PROVENANCE_KEY)
    return DatasetMetadata.from_json(entry, PROVENANCE_KEY) if entry is not None else None


def open_logger(
    env: Any,
    data_dir: str | os.PathLike,
    options: WriterOptions,
    metadata: dict[str, Any],
    step_fn: Callable[..., Any] | None,
    episode_fn: Callable[..., Any] | None,
) -> Any:
    """``envlogger.EnvLogger`` writing a new Riegeli log into ``data_dir``."""
    check_options(options)
    path = prepare_directory(data_dir)
    if (path / LOG_METADATA_FILE).exists():
        raise DatasetError(
            f"{path} already holds an envlogger log; a second recording would replace its "
            "metadata. Record into another directory: convert reads every log directory "
            "below the path it is given (e.g. logs/run1, logs/run2)"
        )
    _compat.patch_numpy_for_envlogger()  # envlogger 1.2's encoder uses np.unicode_
    import envlogger

    return envlogger.EnvLogger(
        env,
        data_directory=os.fspath(path),
        step_fn=step_fn,
        episode_fn=episode_fn,
        metadata=metadata,
        max_episodes_per_file=options.max_episodes_per_shard or 1000,
    )
