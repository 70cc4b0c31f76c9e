"""Salvaging corrupt shards (``rlds-hub validate --repair --drop-corrupt``).

Every record of a damaged shard that is still readable is kept; only what cannot be read
is dropped, and each drop is reported: split, shard, byte range, record index in the shard
and episode positions in the split (before the repair), with the episode's
``episodes.jsonl`` row when there is one.

Reading a TFRecord shard, a record whose header is intact but whose data fails its CRC is
skipped exactly (its length is known); after a header that fails its CRC (or runs past the
end of the file) reading resumes at the next offset where a whole record — header and data
— passes both CRCs. How many records a damaged stretch held follows from the count
``dataset_info.json`` lists, exactly when the shard has one such stretch (several: the
episodes lost are known as a range). An ArrayRecord shard keeps every record its reader can
still read.

Nothing is changed until everything is ready, and the change survives a crash at any point:

1. the repaired shards are written, fsynced and re-read into
   ``<dataset>/.rlds_hub-salvage/<time>/<shard>.repaired`` (the originals are untouched);
2. ``journal.json`` there records the new ``dataset_info.json``, ``episodes.jsonl`` and
   ``checksums.json`` — the commit point;
3. each original is hard-linked to ``<shard>.original`` there, then replaced by its
   repaired file with one rename; then the metadata files are replaced atomically, and the
   journal becomes ``report.json``.

:func:`recover` (the first thing every repair does) finishes a journal left by a killed
repair and removes a salvage directory that never reached its journal. The corrupt
originals stay in the salvage directory until the user deletes it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlds_hub.storage import checksums, dataset_files, shards
from rlds_hub.storage.episode_index import EpisodeIndex

SALVAGE_DIR = ".rlds_hub-salvage"
JOURNAL = "journal.json"
REPORT = "report.json"
_REPAIRED = ".repaired"
_ORIGINAL = ".original"
_SCAN_CHUNK = 1 << 22


@dataclasses.dataclass
class Dropped:
    """One damaged stretch of a shard and the episodes it held."""

    split: str
    shard: str
    where: str  # "bytes 120-480" (TFRecord) or "record 3" (ArrayRecord)
    reason: str
    count: int  # episodes lost here (not exact: in all the shard's damaged stretches)
    records: list[int]  # their record indices in the shard, as listed (exact only)
    episodes: list[int]  # their positions in the split before the repair (not exact: the
    # range the lost ones lie in)
    exact: bool = True  # False: several stretches of unknown size in one shard
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def describe(self) -> str:
        if self.exact:
            what = (
                f"record(s) {_ranges(self.records)}, episode(s) {_ranges(self.episodes)} "
                f"of split {self.split!r}"
                if self.count
                else "no record"
            )
        else:
            what = (
                f"{self.count} episode(s) lost in this shard's damaged stretches, among "
                f"episodes {_ranges(self.episodes)} of split {self.split!r} (which ones "
                "cannot be told)"
            )
        text = f"{self.shard}: {self.where} ({self.reason}): {what}"
        ids = [_row_id(r) for r in self.rows]
        if any(ids):
            text += "; " + ", ".join(i for i in ids if i)
        return text


@dataclasses.dataclass
class _Region:
    start: int
    end: int
    reason: str
    count: int | None  # records it held, when known


# ---- reading what can be read -----------------------------------------------------------


def scan_tfrecord(data: bytes | memoryview) -> tuple[list[tuple[int, memoryview]], list[_Region]]:
    """The readable records (offset, data) of a TFRecord file's bytes and its damaged
    stretches, in file order."""
    view = memoryview(data)
    size = len(view)
    records: list[tuple[int, memoryview]] = []
    regions: list[_Region] = []
    offset = 0
    while offset < size:
        state, length = _frame_at(view, offset)
        if state == "ok":
            records.append((offset, view[offset + 12 : offset + 12 + length]))
            offset += 16 + length
            continue
        if state == "data":  # the header is sound: exactly one record is unreadable
            regions.append(_Region(offset, offset + 16 + length, "data CRC mismatch", 1))
            offset += 16 + length
            continue
        following = _next_record(view, offset + 1)
        reason = {
            "short": "truncated record header",
            "past_end": "truncated record",
            "header": "corrupt record length (CRC mismatch)",
        }[state]
        if following is None:
            regions.append(_Region(offset, size, reason, None))
            break
        regions.append(_Region(offset, following, reason, None))
        offset = following
    return records, regions


def _frame_at(view: memoryview, offset: int) -> tuple[str, int]:
    """("ok" | "data" | "header" | "short" | "past_end", data length) of the frame at
    ``offset``."""
    if len(view) - offset < 12:
        return "short", 0
    length, length_crc = struct.unpack_from("<QI", view, offset)
    if shards.masked_crc(view[offset : offset + 8]) != length_crc:
        return "header", 0
    end = offset + 12 + length
    if end + 4 > len(view):
        return "past_end", length
    (data_crc,) = struct.unpack_from("<I", view, end)
    return ("ok" if shards.masked_crc(view[offset + 12 : end]) == data_crc else "data"), length


def _next_record(view: memoryview, start: int) -> int | None:
    """The first offset at or after ``start`` holding a whole record whose header and data
    pass their CRCs (candidates found with NumPy: a length that fits the file)."""
    array = np.frombuffer(view, dtype=np.uint8)
    size = len(array)
    position = start
    while position + 16 <= size:
        stop = min(size - 16 + 1, position + _SCAN_CHUNK)  # candidate offsets [position, stop)
        count = stop - position
        window = array[position : stop + 7].astype(np.uint64)
        lengths = np.zeros(count, np.uint64)
        for k in range(8):
            lengths |= window[k : k + count] << np.uint64(8 * k)
        room = np.uint64(size - 16) - np.arange(position, stop, dtype=np.uint64)
        for candidate in np.flatnonzero((lengths > 0) & (lengths <= room)):
            offset = position + int(candidate)
            if _frame_at(view, offset)[0] == "ok":
                return offset
        position = stop
    return None


def _read_array_record(path: str, within: str | None) -> tuple[list[bytes], list[_Region]]:
    """The records an ArrayRecord file's reader can still read, and those it cannot."""
    from array_record.python import array_record_module

    target = shards.confining(path, within)
    if target is not None:
        shards.read_bytes(path, within=target)  # refuses a link out or a special file
    try:
        reader = array_record_module.ArrayRecordReader(path)
    except Exception as e:  # riegeli raises plain RuntimeErrors
        raise dataset_files.DatasetError(
            f"{path}: its ArrayRecord index is unreadable ({e}), so no record can be told "
            "apart; restore the shard from a copy"
        ) from e
    kept: list[bytes] = []
    regions: list[_Region] = []
    try:
        for index in range(reader.num_records()):
            try:
                kept.append(reader.read([index])[0])
            except Exception as e:
                regions.append(_Region(index, index + 1, f"unreadable record ({e})", 1))
    finally:
        reader.close()
    return kept, regions


# ---- planning --------------------------------------------------------------------------


@dataclasses.dataclass
class _ShardPlan:
    split: str
    index: int  # shard index in the split
    path: str
    records: list[bytes | memoryview]
    dropped: list[Dropped]
    lost_bytes: int


def plan_shard(dataset: Any, split: str, index: int) -> _ShardPlan:
    """What salvaging one shard keeps and drops.

    Raises:
      DatasetError: the shard holds more records than listed, or fewer damaged stretches
        than its missing records could fit (nothing to salvage safely).
    """
    info = dataset.split(split)
    path = info.shard_paths[index]
    listed = info.shard_lengths[index]
    first = sum(info.shard_lengths[:index])
    name = os.path.basename(path)
    if dataset.file_format == "array_record":
        records, regions = _read_array_record(path, dataset.real_path)
        kept: list[bytes | memoryview] = list(records)
        items = _order_array_record(regions, len(records))
    else:
        found, regions = scan_tfrecord(shards.map_file(path, within=dataset.real_path))
        kept = [record for _, record in found]
        items = sorted(
            [(o, None) for o, _ in found] + [(r.start, r) for r in regions],
            key=lambda item: item[0],
        )
        if len(found) + sum(r.count or 0 for r in regions) < listed and not any(
            r.count is None for r in regions
        ):
            # a file cut exactly between records: the last episodes are missing
            end = len(shards.map_file(path, within=dataset.real_path))
            missing = listed - len(found) - sum(r.count or 0 for r in regions)
            tail = _Region(end, end, "missing at the end of the file (cut short)", missing)
            regions.append(tail)
            items.append((end, tail))
    missing = listed - len(kept)
    if missing < 0:
        raise dataset_files.DatasetError(
            f"{name} holds {len(kept)} readable records, more than the {listed} "
            f"{dataset_files.DATASET_INFO} lists: that is not damage --drop-corrupt can repair"
        )
    unknown = [r for r in regions if r.count is None]
    known = sum(r.count or 0 for r in regions)
    if len(unknown) == 1 and missing >= known:
        unknown[0].count = missing - known
    if (len(unknown) <= 1 and known + sum(r.count or 0 for r in unknown) != missing) or (
        missing < known
    ):
        raise dataset_files.DatasetError(
            f"{name}: {len(kept)} readable records and {known} unreadable ones do not add up "
            f"to the {listed} {dataset_files.DATASET_INFO} lists; nothing was changed"
        )
    unit = "record" if dataset.file_format == "array_record" else "bytes"
    dropped = _assign(items, split, name, first, listed, unit, exact=len(unknown) <= 1)
    rows = dataset.episode_rows(split)
    if rows is not None:
        for item in dropped:
            item.rows = [rows[i] for i in item.episodes if i < len(rows)] if item.exact else []
    lost = sum(r.end - r.start for r in regions) if dataset.file_format != "array_record" else 0
    return _ShardPlan(split, index, path, kept, dropped, lost)


def _order_array_record(regions: list[_Region], kept: int) -> list[tuple[int, _Region | None]]:
    bad = {r.start: r for r in regions}
    return [(i, bad.get(i)) for i in range(kept + len(regions))]


def _assign(
    items: Sequence[tuple[int, _Region | None]],
    split: str,
    shard: str,
    first: int,
    listed: int,
    unit: str,
    *,
    exact: bool,
) -> list[Dropped]:
    """Record indices and episode positions of the damaged stretches, in file order."""
    regions = [r for _, r in items if r is not None]
    where = [
        f"record {r.start}" if unit == "record" else f"bytes {r.start}-{r.end}" for r in regions
    ]
    if not exact:  # several stretches of unknown size: the range the lost episodes share
        good = [r is None for _, r in items]
        before = good.index(False)
        after = good[::-1].index(False)
        span = list(range(first + before, first + listed - after))
        lost = listed - sum(good)
        return [
            Dropped(split, shard, w, r.reason, lost, [], span, exact=False)
            for w, r in zip(where, regions, strict=True)
        ]
    dropped: list[Dropped] = []
    record = 0
    for _, region in items:
        if region is None:
            record += 1
            continue
        records = list(range(record, record + (region.count or 0)))
        dropped.append(
            Dropped(
                split,
                shard,
                where[len(dropped)],
                region.reason,
                len(records),
                records,
                [first + r for r in records],
            )
        )
        record += len(records)
    return dropped


# ---- committing ------------------------------------------------------------------------


def salvage(
    directory: Path, dataset: Any, damaged: Sequence[tuple[str, int]]
) -> tuple[list[Dropped], str]:
    """Rewrites the ``damaged`` shards (split, shard index) of ``dataset`` with their
    readable records and updates its metadata (see the module docstring); returns what was
    dropped and the salvage directory. The caller holds the dataset's lock.

    Raises:
      DatasetError: a shard that cannot be salvaged safely (nothing is changed).
    """
    plans = [plan_shard(dataset, split, index) for split, index in damaged]
    work = directory / SALVAGE_DIR / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    while work.exists():
        work = work.with_name(work.name + "-")
    work.mkdir(parents=True)
    try:
        sums = checksums.read_checksums(directory)
        for plan in plans:
            repaired = work / (os.path.basename(plan.path) + _REPAIRED)
            _write_shard(repaired, plan.records, dataset.file_format)
            if sums is not None:
                sums["shards"][os.path.basename(plan.path)] = checksums.file_checksum(repaired)
        journal = {
            "shards": [os.path.basename(p.path) for p in plans],
            "dataset_info": _new_info(dataset, plans),
            "dataset_info_before": dataset.info,
            "episodes": _new_rows(dataset, plans),
            "checksums": sums["shards"] if sums is not None else None,
            "dropped": [dataclasses.asdict(d) for p in plans for d in p.dropped],
        }
        dataset_files.atomic_write(
            work / JOURNAL, json.dumps(journal, default=_json).encode(), sync=True
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _commit(directory, work)
    return [d for p in plans for d in p.dropped], os.fspath(work)


def _write_shard(path: Path, records: Sequence[bytes | memoryview], file_format: str) -> None:
    """Writes, fsyncs and re-reads a shard (every record must read back)."""
    if file_format == "array_record":
        shards.write_array_record_file(path, [bytes(r) for r in records], sync=True)
        back = len(shards.read_array_record_file(path, within=os.fspath(path.parent)))
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        shards.write_tfrecord_fd(fd, [bytes(r) for r in records], sync=True)
        back = sum(1 for _ in shards.iter_tfrecord(path, within=os.fspath(path.parent)))
    if back != len(records):
        raise dataset_files.DatasetError(f"{path}: wrote {len(records)} records, read back {back}")


def _new_info(dataset: Any, plans: Sequence[_ShardPlan]) -> dict[str, Any]:
    info = json.loads(json.dumps(dataset.info))
    for plan in plans:
        entry = next(s for s in info["splits"] if s["name"] == plan.split)
        lengths = entry["shardLengths"]
        new = len(plan.records)
        lengths[plan.index] = str(new) if isinstance(lengths[plan.index], str) else new
        if "numBytes" in entry:
            entry["numBytes"] = str(max(0, int(entry["numBytes"]) - plan.lost_bytes))
        stats = entry.get("statistics")
        if isinstance(stats, dict) and "numExamples" in stats:
            stats["numExamples"] = str(sum(int(n) for n in lengths))
    return info


def _new_rows(dataset: Any, plans: Sequence[_ShardPlan]) -> list[dict[str, Any]] | None:
    """The new ``episodes.jsonl`` rows (renumbered), or None: rebuild from the records
    (which episodes were lost is not known exactly), or there is no index."""
    if dataset.episode_index is None:
        return None
    rows = []
    for split in sorted(dataset.splits):
        own = dataset.episode_rows(split)
        affected = [p for p in plans if p.split == split]
        if own is None or any(not d.exact for p in affected for d in p.dropped):
            return None
        lost = {e for p in affected for d in p.dropped for e in d.episodes}
        kept = [r for i, r in enumerate(own) if i not in lost]
        rows += [{**r, "episode": i} for i, r in enumerate(kept)]
    return rows


def _commit(directory: Path, work: Path) -> None:
    """Applies a salvage directory's journal (again, if a repair was killed in it)."""
    journal = json.loads((work / JOURNAL).read_text())
    for name in journal["shards"]:
        repaired = work / (name + _REPAIRED)
        if not repaired.exists():
            continue  # replaced before the interruption
        original = work / (name + _ORIGINAL)
        if not original.exists() and (directory / name).exists():
            os.link(directory / name, original)
        os.replace(repaired, directory / name)
    dataset_files.fsync_path(directory)
    dataset_files.atomic_write(
        directory / dataset_files.DATASET_INFO,
        json.dumps(journal["dataset_info"]).encode(),
        sync=True,
    )
    if journal["episodes"] is not None:
        EpisodeIndex(directory / dataset_files.EPISODE_INDEX).rewrite(journal["episodes"])
    elif (directory / dataset_files.EPISODE_INDEX).exists():
        from rlds_hub.storage.episodes import rebuild_episode_index

        rebuild_episode_index(directory)
    if journal["checksums"] is not None:
        dataset_files.atomic_write(
            directory / dataset_files.CHECKSUMS,
            checksums.checksums_content(journal["checksums"]),
            sync=True,
        )
    os.replace(work / JOURNAL, work / REPORT)


def recover(directory: Path) -> list[str]:
    """Finishes salvages a killed repair left (their journal is written) and removes those
    that never got that far (the originals were not touched); says what it did."""
    root = directory / SALVAGE_DIR
    done: list[str] = []
    for work in _work_dirs(root):
        if (work / JOURNAL).exists():
            _check_unchanged(directory, work)
            _commit(directory, work)
            done.append(
                f"finished the interrupted salvage of {work.name} (shards replaced "
                "by their readable records, metadata updated)"
            )
        elif not (work / REPORT).exists():
            shutil.rmtree(work, ignore_errors=True)
            done.append(f"removed the unfinished salvage {work.name} (nothing had been changed)")
    return done


def episodes_lost(dropped: Sequence[Dropped]) -> int:
    """How many episodes ``dropped`` lost in all (a shard's stretches of unknown size each
    carry the shard's total)."""
    exact = sum(d.count for d in dropped if d.exact)
    shared = {(d.split, d.shard): d.count for d in dropped if not d.exact}
    return exact + sum(shared.values())


def _check_unchanged(directory: Path, work: Path) -> None:
    """Refuses to finish a salvage of a dataset that was written to since it stopped (its
    ``dataset_info.json`` is neither the one before nor the one after the salvage)."""
    journal = json.loads((work / JOURNAL).read_text())
    try:
        current = json.loads((directory / dataset_files.DATASET_INFO).read_text())
    except (OSError, ValueError):
        current = None
    if current not in (journal.get("dataset_info_before"), journal["dataset_info"]):
        raise dataset_files.DatasetError(
            f"{work} holds an interrupted salvage, but {directory} was written to since; it "
            "is not finished, so as not to undo that. Check the dataset with `rlds-hub "
            f"validate`; the repaired shards and the corrupt originals are in {work}"
        )


def _work_dirs(root: Path) -> Iterator[Path]:
    if root.is_dir():
        yield from sorted(p for p in root.iterdir() if p.is_dir())


def _ranges(values: Sequence[int]) -> str:
    if not values:
        return "none"
    parts, start, previous = [], values[0], values[0]
    for value in [*values[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return ", ".join(parts)


def _row_id(row: dict[str, Any]) -> str:
    """What identifies an episode's row to a person (its metadata ids, steps, return)."""
    metadata = row.get("metadata") or {}
    ids = [f"{k}={v}" for k, v in metadata.items() if "id" in k.lower() or "path" in k.lower()]
    text = f"episode {row.get('episode')}: {row.get('num_steps')} steps"
    if row.get("return") is not None:
        text += f", return {row['return']:.6g}"
    return text + (f", {', '.join(ids)}" if ids else "")


def _json(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
