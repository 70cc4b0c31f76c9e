"""Repairing a dataset directory (``rlds-hub validate --repair``) without losing episodes.

- a missing ``dataset_info.json`` is rebuilt from the shard files (their names give the
  dataset, split and shard index; their records are counted and CRC-checked);
- a missing ``features.json`` is rebuilt from the specs rlds_hub keeps in ``metadata.json``;
- leftovers of a killed writer (``.tmp-`` files, shard files that ``dataset_info.json`` does
  not list) are removed;
- ``episodes.jsonl`` is rebuilt from the records when it does not cover every episode.

Nothing that holds a listed episode is ever deleted; a corrupt shard stops the repair with
its name and byte offset — unless ``drop_corrupt`` is given: then each damaged shard is
rewritten with every record that can still be read, and what could not is reported
(:mod:`rlds_hub.storage.salvage`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

from rlds_hub.storage import dataset_files, publish, salvage, shards
from rlds_hub.storage.episodes import rebuild_episode_index

_SHARD_FILE_RE = re.compile(
    r"^(?P<name>[a-z][a-z0-9_]*)-(?P<split>[A-Za-z0-9_]+)\.(?P<fmt>tfrecord|array_record)"
    r"-(?P<index>\d{5,})(-of-(?P<total>\d{5,}))?$"
)


@dataclasses.dataclass
class RepairReport:
    """What :func:`repair` did (``actions``) and could not do (``problems``)."""

    path: str
    actions: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    dropped: list[salvage.Dropped] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def repair(path: str | os.PathLike, *, drop_corrupt: bool = False) -> RepairReport:
    """Repairs the dataset directory at ``path`` (see the module docstring).

    ``drop_corrupt``: salvage corrupt shards — keep every readable record, drop the rest
    and report it in ``dropped`` — instead of stopping at them.

    An object-store URL (``s3://``, ``gs://``): :func:`repair_remote`.

    Raises:
      DatasetError: the directory is being written by another process.
    """
    if "://" in os.fspath(path):
        return repair_remote(os.fspath(path))
    directory = Path(path).expanduser().absolute()
    recovered = publish.recover(directory)  # a job's commit killed between two renames
    if not directory.is_dir():
        raise dataset_files.DatasetError(f"{directory} is not a directory")
    report = RepairReport(os.fspath(directory), actions=recovered)
    lock = dataset_files.DatasetLock(directory)
    lock.acquire()
    try:
        report.actions += salvage.recover(directory)  # a salvage killed half-way
        _repair_locked(directory, report, drop_corrupt)
    finally:
        lock.release()
    return report


def repair_remote(url: str) -> RepairReport:
    """Repairs an object-store output: finishes or removes what interrupted jobs' commits
    left (:func:`rlds_hub.storage.remote_commit.recover`). A dataset's own files are not
    rebuilt in a bucket: a prefix with objects but no ``dataset_info.json`` is reported."""
    from rlds_hub.storage import remote_commit

    report = RepairReport(url, actions=remote_commit.recover(url))
    fs, path = remote_commit.filesystem(url)
    present = remote_commit.objects(fs, path)
    if any(marker in present for marker in remote_commit.OWN_MARKERS):
        return report
    if present:
        shown = ", ".join(sorted(present)[:5]) + (", ..." if len(present) > 5 else "")
        report.problems.append(
            f"{url} holds {len(present)} object(s) ({shown}) but no "
            f"{dataset_files.DATASET_INFO}, and no interrupted rlds_hub commit to finish: it "
            "is not a dataset (an interrupted copy?). Copy the dataset again, or repair a "
            "local copy and upload it"
        )
    else:
        report.problems.append(f"there is no dataset at {url} (nothing was committed there)")
    return report


def _repair_locked(directory: Path, report: RepairReport, drop_corrupt: bool = False) -> None:
    info_path = directory / dataset_files.DATASET_INFO
    features_path = directory / dataset_files.FEATURES
    if not features_path.exists():
        features = features_from_metadata(directory)
        if features is None:
            report.problems.append(
                f"{dataset_files.FEATURES} is missing and {dataset_files.METADATA} holds no rlds_hub specs "
                "to rebuild it from; restore it from the dataset's source"
            )
            return
        dataset_files.atomic_write(features_path, _dumps(features), sync=True)
        report.actions.append(
            f"rebuilt {dataset_files.FEATURES} from the specs in {dataset_files.METADATA}"
        )
    if not info_path.exists():
        info = info_from_shards(directory, report)
        if info is None:
            return
        dataset_files.atomic_write(info_path, _dumps(info), sync=True)
        episodes = sum(int(n) for s in info["splits"] for n in s["shardLengths"])
        report.actions.append(
            f"rebuilt {dataset_files.DATASET_INFO} from {sum(len(s['shardLengths']) for s in info['splits'])}"
            f" shard file(s): {episodes} episodes in split(s) "
            f"{', '.join(s['name'] for s in info['splits'])}"
        )
    removed = remove_leftovers(directory)
    if removed:
        report.actions.append(
            f"removed {len(removed)} leftover file(s) of an interrupted writer: "
            f"{', '.join(removed[:5])}{', ...' if len(removed) > 5 else ''}"
        )
    from rlds_hub.storage.dataset import open_dataset

    dataset = open_dataset(directory)
    damaged, found_problems = _damaged_shards(dataset)
    if damaged and drop_corrupt:
        try:
            dropped, work = salvage.salvage(directory, dataset, damaged)
        except dataset_files.DatasetError as e:
            report.problems.append(f"cannot drop what is corrupt: {e}")
            return
        report.dropped += dropped
        lost = salvage.episodes_lost(dropped)
        report.actions.append(
            f"salvaged {len(damaged)} corrupt shard(s): kept every readable record, dropped "
            f"{lost} episode(s) (listed below); the corrupt originals are kept in {work} "
            "(delete it when you no longer need them)"
        )
        if (directory / dataset_files.STATISTICS).exists():
            report.actions.append(
                f"note: {dataset_files.STATISTICS} still describes the episodes before this repair; "
                "recompute it with `rlds-hub stats --save`"
            )
        dataset = open_dataset(directory)
        damaged, found_problems = _damaged_shards(dataset)
    elif damaged:
        found_problems = [
            f"{p} (or run with --drop-corrupt to keep every readable record and drop the rest)"
            for p in found_problems
        ]
    report.problems += found_problems
    if report.problems:
        return
    counts = {name: s.num_episodes for name, s in dataset.splits.items()}
    from rlds_hub.storage.episode_index import EpisodeIndex

    if not EpisodeIndex(directory / dataset_files.EPISODE_INDEX).covers(counts):
        rows = rebuild_episode_index(directory)
        report.actions.append(
            f"rebuilt {dataset_files.EPISODE_INDEX} from the records ({rows} episodes)"
        )


def _damaged_shards(dataset: Any) -> tuple[list[tuple[str, int]], list[str]]:
    """(split, shard index) of every listed shard that is corrupt or holds fewer records
    than listed, and what is wrong with each."""
    damaged: list[tuple[str, int]] = []
    problems: list[str] = []
    for name, split in sorted(dataset.splits.items()):
        for index, (shard_path, expected) in enumerate(
            zip(split.shard_paths, split.shard_lengths, strict=True)
        ):
            if not expected:
                continue
            try:
                found = count_records(Path(shard_path), dataset.file_format)
            except dataset_files.DatasetError as e:
                damaged.append((name, index))
                problems.append(f"{e}; move the shard away (or restore it) and re-run")
                continue
            if found != expected:
                if found < expected:
                    damaged.append((name, index))
                problems.append(
                    f"{os.path.basename(shard_path)} holds {found} episodes but "
                    f"{dataset_files.DATASET_INFO} lists {expected}"
                )
    return damaged, problems


def remove_leftovers(directory: Path) -> list[str]:
    """Deletes ``.tmp-`` files and shard files of the dataset that ``dataset_info.json``
    does not list (or lists with 0 episodes); returns their names."""
    info = json.loads((directory / dataset_files.DATASET_INFO).read_text())
    name, file_format = info.get("name", ""), info.get("fileFormat") or "tfrecord"
    listed: dict[str, list[int]] = {
        s["name"]: [int(n) for n in s.get("shardLengths", [])] for s in info.get("splits", [])
    }
    removed = []
    for p in sorted(directory.iterdir()):
        if p.name.startswith(dataset_files.TMP_PREFIX) and p.is_file():
            dataset_files.remove_quietly(p)
            removed.append(p.name)
            continue
        match = _SHARD_FILE_RE.match(p.name)
        if not match or match["name"] != name or match["fmt"] != file_format:
            continue
        if match["total"] is not None:
            continue  # TFDS's own naming: never written by rlds_hub, never removed
        lengths = listed.get(match["split"])
        index = int(match["index"])
        if lengths is None:
            continue  # a split dataset_info.json does not know: leave it to the user
        if index >= len(lengths) or lengths[index] == 0:
            dataset_files.remove_quietly(p)
            removed.append(p.name)
    return removed


def count_records(path: Path, file_format: str) -> int:
    """Records in a shard file (every TFRecord CRC-checked)."""
    if file_format == "array_record":
        return len(shards.read_array_record_file(path))
    return sum(1 for _ in shards.iter_tfrecord(path))


def info_from_shards(directory: Path, report: RepairReport) -> dict[str, Any] | None:
    """``dataset_info.json`` content listing the shard files found in ``directory``."""
    found: dict[tuple[str, str], dict[str, dict[int, Path]]] = {}
    templates: dict[str, str] = {}
    for p in sorted(directory.iterdir()):
        match = _SHARD_FILE_RE.match(p.name)
        if not match:
            continue
        key = (match["name"], match["fmt"])
        found.setdefault(key, {}).setdefault(match["split"], {})[int(match["index"])] = p
        templates[match["split"]] = (
            dataset_files.SHARD_TEMPLATE
            if match["total"] is None
            else "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
        )
    if not found:
        report.problems.append(
            f"{dataset_files.DATASET_INFO} is missing and there are no shard files to rebuild it from"
        )
        return None
    if len(found) > 1:
        report.problems.append(
            "shard files of several datasets or formats are mixed here ("
            + ", ".join(f"{n} ({f})" for n, f in sorted(found))
            + "); separate them first"
        )
        return None
    (((name, file_format), by_split),) = found.items()
    splits = []
    for split, by_index in sorted(by_split.items()):
        lengths = []
        size = 0
        for index in range(max(by_index) + 1):
            path = by_index.get(index)
            if path is None:
                lengths.append("0")  # the hole of an interrupted shard: nothing listed
                continue
            try:
                lengths.append(str(count_records(path, file_format)))
            except dataset_files.DatasetError as e:
                report.problems.append(f"{e}; move the shard away (or restore it) and re-run")
                return None
            size += path.stat().st_size
        splits.append(
            {
                "name": split,
                "numBytes": str(size),
                "shardLengths": lengths,
                "filepathTemplate": templates[split],
            }
        )
    return {
        "name": name,
        "description": f"Rebuilt by `rlds-hub validate --repair` from the shard files of {name}.",
        "version": "1.0.0",
        "fileFormat": file_format,
        "splits": splits,
    }


def features_from_metadata(directory: Path) -> dict[str, Any] | None:
    """``features.json`` content rebuilt from the specs in rlds_hub's ``metadata.json``."""
    path = directory / dataset_files.METADATA
    if not path.exists():
        return None
    from rlds_hub.format.features import episode_features
    from rlds_hub.format.metadata import ENV_SPEC_KEYS, DatasetMetadata, MetadataError
    from rlds_hub.format.specs import spec_from_json

    try:
        metadata = DatasetMetadata.from_json(json.loads(path.read_text()))
    except (json.JSONDecodeError, MetadataError):
        return None
    specs = metadata.specs or {}
    if not all(k in specs for k in ENV_SPEC_KEYS):
        return None

    def spec(key: str) -> Any:
        return spec_from_json(specs[key]) if key in specs else None

    return episode_features(
        observation_spec=spec("observation"),
        action_spec=spec("action"),
        reward_spec=spec("reward"),
        discount_spec=spec("discount"),
        step_metadata_spec=spec("step_metadata"),
        episode_metadata_spec=spec("episode_metadata"),
        image_encoding=metadata.image_encoding or "png",
    )


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
