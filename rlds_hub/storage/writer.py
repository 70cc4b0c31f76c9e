"""Crash-safe, append-only writer of one split of an RLDS dataset directory.

Publication protocol (each step leaves a directory that plain TFDS reads correctly):

* Every completed episode is written to its own shard file, at an index beyond the shards
  that ``dataset_info.json`` lists (so no reader opens it yet); then ``dataset_info.json``
  is atomically replaced to list it. A process killed at any moment therefore loses at most
  the episode being written, and the metadata never lists a file that is incomplete.
* Episodes of the shard being filled ("pending" shards, one episode each) follow a 0-length
  shard (the "hole"), which TFDS skips without opening its file. The pending files are
  appended, as they are published, to a hidden ``.tmp-`` file; sealing renames it to the
  hole's name, publishes the new shard lengths, then deletes the pending files: at every
  instant each episode is listed exactly once, and no file that is not listed matches the
  TFDS shard pattern (``*.tfrecord-*``) except the pending files in the instant between
  publishing a seal and deleting them (which the next writer, or ``validate --repair``,
  removes if the process dies right there).
* Shard names use ``{SHARD_INDEX}`` only, so no file is ever renamed when shards are added.
* A new dataset gets its ``dataset_info.json`` (with no episodes) as soon as its features
  are known, so a directory holding ``features.json`` always holds a dataset.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Literal

from rlds_hub.format.metadata import DatasetMetadata, MetadataError
from rlds_hub.storage import dataset_files, shards
from rlds_hub.storage.background import BackgroundFiles
from rlds_hub.storage.episode_index import EpisodeIndex

Durability = Literal["process", "os"]
DURABILITY_LEVELS = ("process", "os")
DEFAULT_MAX_EPISODES_PER_SHARD = 1000
DEFAULT_MAX_BYTES_PER_SHARD = 64 * 2**20


class SpecMismatchError(dataset_files.DatasetError):
    """The data offered does not match the dataset's features."""


class _HoleAccumulator:
    """Appends each pending episode's file to a hidden file on the worker thread, so that
    sealing the shard needs no copy on the step path; sealing renames it to the hole's name.
    Its name starts with ``.tmp-``, so no reader or glob takes it for a shard (a crash
    leaves it as garbage to remove)."""

    def __init__(self, files: BackgroundFiles):
        self.path = files.hidden_name("shard")
        self.bytes = 0
        self.count = 0
        self._files = files
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def add(self, source: Path) -> None:
        self._files.call(lambda: self._append(source))

    def _append(self, source: Path) -> None:
        self.bytes += shards.append_file(source, self._fd)
        self.count += 1
        # Flush as the shard grows (on this thread, so it costs the step path nothing):
        # sealing and close() then have little left to sync (measured: close 15 -> 7 ms
        # for 100 episodes).
        os.fdatasync(self._fd)

    def finish(self, *, sync: bool) -> None:
        if sync:
            os.fsync(self._fd)
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class DatasetWriter:
    """Appends serialized episodes to ``split`` of the dataset at ``path``.

    Args:
      path: the dataset directory (holds ``dataset_info.json``); created if missing.
      name: TFDS dataset name (default: derived from the directory name, or the existing one).
      split: split to append to.
      file_format: "tfrecord" (default) or "array_record".
      max_episodes_per_shard / max_bytes_per_shard: a shard is sealed when either is reached.
      durability: "process" — every completed episode survives the writing process dying at
        any moment (data is handed to the OS before ``append`` returns); "os" — also fsyncs
        files and the directory before ``append`` returns, surviving an OS crash or power loss.
      description: the TFDS description of a new dataset.

    Call :meth:`set_features` before the first :meth:`append`. A dataset that holds no
    episode (what a recording that failed before its first episode leaves) is taken as new:
    the name, file format, features and metadata given here replace its own.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        name: str | None = None,
        split: str = "train",
        file_format: str = "tfrecord",
        max_episodes_per_shard: int | None = DEFAULT_MAX_EPISODES_PER_SHARD,
        max_bytes_per_shard: int | None = DEFAULT_MAX_BYTES_PER_SHARD,
        durability: Durability = "process",
        description: str = "",
    ):
        dataset_files.check_split_name(split)
        dataset_files.check_file_format(file_format)
        if durability not in DURABILITY_LEVELS:
            raise ValueError(f"durability must be one of {DURABILITY_LEVELS}, got {durability!r}")
        for arg, value in (
            ("max_episodes_per_shard", max_episodes_per_shard),
            ("max_bytes_per_shard", max_bytes_per_shard),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{arg} must be >= 1 or None, got {value}")
        self.path = dataset_files.prepare_directory(path)
        self.split = split
        self._max_episodes = max_episodes_per_shard
        self._max_bytes = max_bytes_per_shard
        self._sync = durability == "os"
        self._features_json: Any = None
        self._lock = dataset_files.DatasetLock(self.path)
        self._lock.acquire()
        self._files = BackgroundFiles(self.path)
        self._closed = False
        try:
            self._load(name, file_format, description)
        except BaseException:
            self._lock.release()
            raise

    # ------------------------------------------------------------------------------------
    # Opening: a new dataset, or resuming an existing one.

    def _load(self, name: str | None, file_format: str, description: str) -> None:
        info_path = self.path / dataset_files.DATASET_INFO
        self.existing_metadata: dict[str, Any] | None = None
        if info_path.exists() and self._holds_no_episode(_read_json(info_path)):
            # What a recording that failed before its first episode left: the next
            # recording's name, file format, features and metadata replace it.
            info = _read_json(info_path)
            for p in self.path.iterdir():
                if dataset_files.is_shard_name(p.name):
                    dataset_files.remove_quietly(p)  # 0-length shards of an empty dataset
            self.name = name or info.get("name") or dataset_files.dataset_name_from_path(self.path)
            dataset_files.check_dataset_name(self.name)
            self.file_format = file_format
            self._info = new_dataset_info(
                self.name, file_format, description or info.get("description", "")
            )
            self._features_on_disk = None
        elif info_path.exists():
            self._info = _read_json(info_path)
            existing_name = self._info.get("name")
            if name is not None and name != existing_name:
                raise dataset_files.DatasetError(
                    f"{self.path} holds dataset {existing_name!r}, not {name!r}; omit name= "
                    "or choose another directory"
                )
            self.name = existing_name
            self.file_format = self._info.get("fileFormat", "tfrecord")
            if self.file_format != file_format:
                raise dataset_files.DatasetError(
                    f"{self.path} stores {self.file_format} shards; append with "
                    f"file_format={self.file_format!r}"
                )
            self._features_on_disk = _read_json(self.path / dataset_files.FEATURES)
            self.existing_metadata = _read_json_or_empty(self.path / dataset_files.METADATA)
        else:
            self._refuse_non_empty()
            self.name = name or dataset_files.dataset_name_from_path(self.path)
            dataset_files.check_dataset_name(self.name)
            self.file_format = file_format
            self._info = new_dataset_info(self.name, file_format, description)
            self._features_on_disk = None
        self._split = self._split_entry(create=False)
        self._remove_stale_files()
        counts = {s["name"]: sum(int(n) for n in s["shardLengths"]) for s in self._info["splits"]}
        self._index = EpisodeIndex(self.path / dataset_files.EPISODE_INDEX)
        self._index.truncate_to(counts)
        if self._features_on_disk is not None and not self._index.covers(counts):
            from rlds_hub.storage.repair import rebuild_episode_index

            rebuild_episode_index(self.path)
        self._num_episodes = counts.get(self.split, 0)
        self._hole = self._find_hole()
        self._pending_bytes = sum(
            (self.path / self._shard_name(i)).stat().st_size for i in self._pending_indices()
        )
        self._accumulator: _HoleAccumulator | None = None
        if self._hole is not None:
            self._start_accumulator()
            for i in self._pending_indices():
                self._accumulator.add(self.path / self._shard_name(i))

    def set_features(
        self,
        features_json: dict[str, Any],
        *,
        metadata: DatasetMetadata | dict[str, Any] | None = None,
        describe_mismatch: Any = None,
    ) -> int:
        """Fixes the episode features; must equal the dataset's when appending.

        Args:
          features_json: the episode features (``features.json`` content, see
            :func:`rlds_hub.format.features.episode_features`).
          metadata: dataset-level metadata for ``metadata.json`` on a new dataset; on an
            existing one only its ``sessions`` entries are appended.
          describe_mismatch: callable(existing metadata) -> list of human-readable
            differences, used in the error when the features differ.

        Returns:
          The number of the first session in ``metadata["sessions"]`` (its position in the
          dataset's list of sessions), to tie episodes to the session that recorded them.
        """
        if not isinstance(metadata, DatasetMetadata):
            metadata = DatasetMetadata.from_json(metadata or {})
        if self._features_on_disk is not None:
            if self._features_on_disk != features_json:
                details = []
                if describe_mismatch is not None:
                    details = describe_mismatch(self.existing_metadata or {})
                details = details or ["the features differ (compare features.json)"]
                raise SpecMismatchError(
                    f"cannot append to {self.path}: the new data does not match the dataset's "
                    "specs:\n  " + "\n  ".join(details) + "\nRecord into a new directory, or "
                    "use an environment with the same specs."
                )
            try:
                existing = DatasetMetadata.from_json(self.existing_metadata or {})
            except MetadataError as e:
                raise dataset_files.DatasetError(
                    f"cannot append to {self.path}: in its metadata.json, {e}"
                ) from None
            session = len(existing.sessions or ())
            merged = dataclasses.replace(
                existing, sessions=(*(existing.sessions or ()), *(metadata.sessions or ()))
            )
            dataset_files.atomic_write(
                self.path / dataset_files.METADATA, _dumps(merged.to_json()), sync=self._sync
            )
        else:
            # A new dataset: features, metadata, then dataset_info.json (no episodes yet),
            # which makes the directory a dataset.
            dataset_files.atomic_write(
                self.path / dataset_files.FEATURES, _dumps(features_json), sync=self._sync
            )
            dataset_files.atomic_write(
                self.path / dataset_files.METADATA, _dumps(metadata.to_json()), sync=self._sync
            )
            dataset_files.atomic_write(
                self.path / dataset_files.DATASET_INFO, _dumps(self._info), sync=True
            )
            self._features_on_disk = features_json
            session = 0
        if self._sync:
            dataset_files.fsync_path(self.path)
        self._features_json = features_json
        return session

    def _holds_no_episode(self, info: dict[str, Any]) -> bool:
        """Whether ``info`` lists no episode in any split and no shard file holds data."""
        listed = sum(
            int(n) for split in info.get("splits", []) for n in split.get("shardLengths", [])
        )
        if listed:
            return False
        return all(
            p.stat().st_size == 0
            for p in self.path.iterdir()
            if dataset_files.is_shard_name(p.name)
        )

    def _refuse_non_empty(self) -> None:
        """A directory without ``dataset_info.json`` is written only if it holds nothing but
        rlds_hub's lock, temporary files, and the features and metadata of a dataset whose
        creation was interrupted before its ``dataset_info.json`` (no episodes)."""
        names = sorted(p.name for p in self.path.iterdir())
        shard_files = [n for n in names if dataset_files.is_shard_name(n)]
        if shard_files or dataset_files.EPISODE_INDEX in names:
            raise dataset_files.DatasetError(
                dataset_files.missing_info_message(os.fspath(self.path), names)
            )
        allowed = {dataset_files.FEATURES, dataset_files.METADATA, dataset_files.LOCK}
        foreign = [
            n for n in names if n not in allowed and not n.startswith(dataset_files.TMP_PREFIX)
        ]
        if foreign:
            raise dataset_files.DatasetError(
                f"{self.path} is not empty and is not an RLDS dataset (it holds "
                f"{', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); record into "
                "an empty or new directory"
            )

    def _split_entry(self, *, create: bool) -> dict[str, Any] | None:
        for entry in self._info["splits"]:
            if entry["name"] == self.split:
                template = entry.get("filepathTemplate", "")
                if template != dataset_files.SHARD_TEMPLATE:
                    raise dataset_files.DatasetError(
                        f"split {self.split!r} of {self.path} uses shard names {template!r}, "
                        "which cannot grow without renaming files; append to a new split or "
                        "rewrite the dataset with rlds_hub first"
                    )
                return entry
        if not create:
            return None
        entry = {
            "name": self.split,
            "numBytes": "0",
            "shardLengths": [],
            "filepathTemplate": dataset_files.SHARD_TEMPLATE,
        }
        self._info["splits"].append(entry)
        return entry

    def _shard_lengths(self) -> list[int]:
        return [int(n) for n in self._split["shardLengths"]] if self._split else []

    def _find_hole(self) -> int | None:
        lengths = self._shard_lengths()
        if not lengths:
            return None
        for i in range(len(lengths) - 1, -1, -1):
            if lengths[i] == 0:
                return i
            if lengths[i] != 1:
                return None
        return None

    def _pending_indices(self) -> range:
        if self._hole is None:
            return range(0)
        return range(self._hole + 1, len(self._shard_lengths()))

    def _shard_name(self, index: int) -> str:
        return dataset_files.shard_filename(self.name, self.split, self.file_format, index)

    def _remove_stale_files(self) -> None:
        """Deletes leftovers of an interrupted session: temporary files, unlisted shards."""
        lengths = self._shard_lengths()
        prefix = f"{self.name}-{self.split}.{self.file_format}-"
        for p in self.path.iterdir():
            if p.name.startswith(dataset_files.TMP_PREFIX):
                dataset_files.remove_quietly(p)
            elif p.name.startswith(prefix) and p.name[len(prefix) :].isdigit():
                index = int(p.name[len(prefix) :])
                if index >= len(lengths) or lengths[index] == 0:
                    dataset_files.remove_quietly(p)

    # ------------------------------------------------------------------------------------
    # Appending.

    @property
    def num_episodes(self) -> int:
        """Episodes of this split on disk (published)."""
        return self._num_episodes

    def append(self, record: shards.Pieces | bytes, index_row: dict[str, Any]) -> None:
        """Publishes one serialized episode; when this returns, the episode is on disk."""
        if self._closed:
            raise dataset_files.DatasetError("the dataset writer is closed")
        if self._features_json is None:
            raise dataset_files.DatasetError(
                "set_features() must be called before the first append"
            )
        if self._split is None:
            self._split = self._split_entry(create=True)
        lengths = self._split["shardLengths"]
        if self._hole is None:
            self._hole = len(lengths)
            lengths.append("0")
            self._start_accumulator()
        # Written into a file created in advance, renamed to the index after the listed
        # shards: no reader opens it until dataset_info.json lists it.
        fd, tmp = self._files.take()
        if self.file_format == "tfrecord":
            size = shards.write_tfrecord_fd(fd, [record], sync=self._sync)
        else:
            os.close(fd)
            size = shards.write_array_record_file(tmp, [record], sync=self._sync)
        final = self.path / self._shard_name(len(lengths))
        lengths.append("1")
        self._split["numBytes"] = str(int(self._split["numBytes"]) + size)
        self._index.append({"split": self.split, "episode": self._num_episodes, **index_row})
        # The shard gets its name and dataset_info.json lists it in two consecutive system
        # calls: only a kill between them leaves an unlisted shard (removed on next open).
        publish = self._prepare_info()
        os.rename(tmp, final)
        publish()
        if self._accumulator is not None:
            self._accumulator.add(final)
        self._num_episodes += 1
        self._pending_bytes += size
        pending = len(lengths) - self._hole - 1
        if (self._max_episodes is not None and pending >= self._max_episodes) or (
            self._max_bytes is not None and self._pending_bytes >= self._max_bytes
        ):
            self.seal()

    def seal(self) -> None:
        """Merges the pending one-episode shards into one shard (no-op if there are none)."""
        pending = list(self._pending_indices())
        if not pending:
            return
        sources = [self.path / self._shard_name(i) for i in pending]
        hole_path = self.path / self._shard_name(self._hole)
        accumulator, self._accumulator = self._accumulator, None
        if accumulator is not None:
            try:
                self._files.drain()
                complete = accumulator.count == len(pending)
                complete = complete and accumulator.bytes == self._pending_bytes
            except OSError:
                complete = False
            accumulator.finish(sync=self._sync and complete)
        else:
            complete = False
        if complete:
            size = accumulator.bytes
            staged = accumulator.path
        else:
            if accumulator is not None:
                self._files.delete(accumulator.path)
            staged = self._files.hidden_name("shard")
            if self.file_format == "tfrecord":
                size = shards.concatenate_files(sources, staged, sync=self._sync)
            else:
                records = [r for s in sources for r in shards.read_array_record_file(s)]
                size = shards.write_array_record_file(staged, records, sync=self._sync)
        lengths = self._split["shardLengths"]
        del lengths[self._hole :]
        lengths.append(str(len(pending)))
        old_bytes = self._pending_bytes
        self._split["numBytes"] = str(int(self._split["numBytes"]) - old_bytes + size)
        publish = self._prepare_info()
        os.rename(staged, hole_path)  # then, at once, the listing; then the pending files go
        publish()
        for source in sources:
            self._files.discard(source)
        self._hole = None
        self._pending_bytes = 0

    def _start_accumulator(self) -> None:
        if self.file_format == "tfrecord":  # ArrayRecord files cannot be appended to
            self._accumulator = _HoleAccumulator(self._files)

    def _prepare_info(self) -> Any:
        """Writes the new dataset_info.json under a hidden name; the returned function
        renames it into place (and syncs the directory under durability "os")."""
        commit = self._files.prepare_replace(
            self.path / dataset_files.DATASET_INFO, _dumps(self._info), sync=self._sync
        )

        def publish() -> None:
            commit()
            if self._sync:
                dataset_files.fsync_path(self.path)

        return publish

    def close(self) -> None:
        """Seals the open shard, syncs everything to disk and releases the lock."""
        if self._closed:
            return
        try:
            self.seal()
            self._files.close()
            if self._features_json is not None:  # the last version, without preallocated blocks
                dataset_files.atomic_write(
                    self.path / dataset_files.DATASET_INFO, _dumps(self._info), sync=True
                )
            for p in self.path.iterdir():
                if p.is_file() and p.name != dataset_files.LOCK:
                    dataset_files.fsync_path(p)
            dataset_files.fsync_path(self.path)
            self._index.close()
        finally:
            self._closed = True
            if self._accumulator is not None:
                self._accumulator.close()
                dataset_files.remove_quietly(self._accumulator.path)
            self._files.close()
            self._lock.release()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def new_dataset_info(name: str, file_format: str, description: str) -> dict[str, Any]:
    """The initial ``dataset_info.json`` content (the fields TFDS itself writes)."""
    return {
        "name": name,
        "description": description,
        "version": "1.0.0",
        "fileFormat": file_format,
        "splits": [],
    }


def _dumps(data: Any) -> bytes:
    # Compact: json's C encoder is ~4x faster than its indenting one (this runs per episode).
    return json.dumps(data, separators=(",", ":")).encode()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise dataset_files.DatasetError(
            f"{path} is missing; the dataset directory is incomplete"
        ) from e
    except json.JSONDecodeError as e:
        raise dataset_files.DatasetError(
            f"{path} is not valid JSON ({e}); the file is corrupt"
        ) from e


def _read_json_or_empty(path: Path) -> dict[str, Any]:
    return _read_json(path) if path.exists() else {}
