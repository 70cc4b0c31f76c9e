"""What indexing records about a dataset, read through the core: the summary (features
tree, splits, size, sessions, metadata), layout, statistics, shard checksums, the episode
metadata fields, and the episode rows (streamed in chunks)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from rlds_hub.inspection import saved_statistics, statistics, summarize
from rlds_hub.server.core.numbers import finite_json
from rlds_hub.storage import (
    RLDSDataset,
    Selection,
    dataset_files,
    dataset_layout,
    episode_table,
    files,
    iter_batches,
)
from rlds_hub.storage.checksums import file_checksum, read_checksums
from rlds_hub.storage.episodes import TablePlan, rows_from_batch, table_plan

# Episode-metadata kinds (numpy dtype kinds of the leaves) as filter types.
FIELD_TYPES = {"S": "text", "b": "bool", "f": "number", "i": "number", "u": "number"}
TEXT_LIMIT = 1000  # characters of a text value kept for filters
CHUNK_EPISODES = 2000  # rows per database insert


class ProgressBar(Protocol):
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[str, int, str], ProgressBar]


class _Silent:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def no_progress(description: str, total: int, unit: str) -> ProgressBar:
    return _Silent()


@dataclasses.dataclass
class DatasetFacts:
    """The dataset-level columns of the index (episode rows are streamed separately)."""

    tfds_name: str
    version: str
    file_format: str
    layout: str
    num_episodes: int
    size_bytes: int
    features: dict[str, Any]
    splits: dict[str, Any]
    metadata: dict[str, Any]
    provenance: dict[str, Any]
    statistics: dict[str, Any]
    checksums: dict[str, Any]
    episode_fields: dict[str, str]
    search_text: str


def gather(
    dataset: RLDSDataset,
    *,
    compute_statistics: bool,
    compute_checksums: bool,
    progress: ProgressFactory = no_progress,
) -> DatasetFacts:
    """Everything but the episode rows (reads episodes only to compute missing statistics
    and shards only to compute missing checksums)."""
    summary = summarize(dataset, count_steps=False)
    layout_name = dataset_layout(dataset)
    plan = table_plan(dataset)
    stats, stats_source = _statistics(dataset, compute_statistics, progress)
    sums, sums_source = _checksums(dataset, compute_checksums, progress)
    splits = {
        name: {"episodes": entry["episodes"], "shards": entry["shards"], "bytes": entry["bytes"]}
        for name, entry in summary["splits"].items()
    }
    meta = dataset.dataset_metadata
    job = meta.provenance.to_json() if meta.provenance is not None else None
    provenance = {
        "created": meta.created,
        "rlds_hub_version": meta.rlds_hub_version,
        "env_name": meta.env_name,
        "policy": meta.policy,
        "seed": meta.seed,
        "sessions": summary.get("sessions", []),
        "pipeline": meta.extra.get("pipeline") or job,  # "pipeline": older datasets' name
        "description": dataset.info.get("description"),
        "statistics": stats_source,
        "checksums": sums_source,
    }
    return DatasetFacts(
        tfds_name=dataset.name,
        version=dataset.version,
        file_format=dataset.file_format,
        layout=layout_name,
        num_episodes=dataset.num_episodes,
        size_bytes=int(summary["size_bytes"]),
        features=finite_json(summary["features"]),
        splits=splits,
        metadata=finite_json(dataset.metadata),  # the file as it is: shown and searched
        provenance=finite_json(provenance),
        statistics=finite_json(stats),
        checksums=finite_json(sums),
        episode_fields=episode_fields(plan),
        search_text=_search_text(dataset, dataset.metadata),
    )


def episode_fields(plan: TablePlan) -> dict[str, str]:
    """``{metadata field: "number" | "text" | "bool"}`` of the episode table's metadata."""
    return {name: FIELD_TYPES.get(kind, "text") for name, kind in plan.metadata.values()}


def _statistics(
    dataset: RLDSDataset, compute: bool, progress: ProgressFactory
) -> tuple[dict[str, Any], str | None]:
    saved = (saved_statistics(dataset) or {}).get("splits", {})
    result: dict[str, Any] = {}
    computed = False
    for split in sorted(dataset.splits):
        if split in saved:
            result[split] = saved[split]
        elif compute:
            total = dataset.split(split).num_episodes
            bar = progress(f"statistics {split}", total, "episode")
            done = [0]

            def advance(count: int, bar: ProgressBar = bar, done: list[int] = done) -> None:
                bar.update(count - done[0])
                done[0] = count

            try:
                result[split] = statistics(dataset, split, progress=advance)
            finally:
                bar.close()
            computed = True
    if not result:
        return {}, None
    if computed:
        return result, "computed" if not saved else "statistics.json and computed"
    return result, dataset_files.STATISTICS


def _checksums(
    dataset: RLDSDataset, compute: bool, progress: ProgressFactory
) -> tuple[dict[str, Any], str | None]:
    content = read_checksums(dataset.path, within=dataset.real_path)
    if content is not None:
        return content, dataset_files.CHECKSUMS
    if not compute:
        return {}, None
    shard_paths = [p for s in dataset.splits.values() for p, _ in s.nonempty_shards]
    total = sum(files.size(p) for p in shard_paths if files.exists(p))
    bar = progress("checksums", total, "B")
    shards = {}
    try:
        for path in shard_paths:
            checksum = file_checksum(path, within=dataset.real_path)
            shards[os.path.basename(path)] = checksum
            bar.update(checksum["bytes"])
    except FileNotFoundError as e:
        raise dataset_files.DatasetError(f"{e.filename}: a listed shard file is missing") from e
    finally:
        bar.close()
    return {"algorithm": "crc32c", "shards": shards}, "computed"


def _search_text(dataset: RLDSDataset, metadata: dict[str, Any]) -> str:
    """Lower-case text that ``q=`` searches: names, description and metadata values."""
    parts = [dataset.name, os.path.basename(dataset.path), str(dataset.info.get("description", ""))]

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key != "specs":
                    parts.append(str(key))
                    collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)
        elif value is not None:
            parts.append(str(value))

    collect(metadata)
    return " ".join(parts).lower()[:100_000]


def iter_row_chunks(
    dataset: RLDSDataset, split: str, plan: TablePlan, progress: ProgressFactory = no_progress
) -> Iterator[list[dict[str, Any]]]:
    """The split's episode table in chunks: from ``episodes.jsonl`` when it covers the split
    (nothing decoded), otherwise decoded batch by batch (bounded memory)."""
    total = dataset.split(split).num_episodes
    bar = progress(f"episodes {split}", total, "episode")
    try:
        if dataset.episode_rows(split) is not None:
            rows = episode_table(dataset, split)
            for start in range(0, len(rows), CHUNK_EPISODES):
                chunk = rows[start : start + CHUNK_EPISODES]
                bar.update(len(chunk))
                yield chunk
            return
        selection = Selection(dataset, split)
        for batch in iter_batches(selection, keys=plan.keys, batch_episodes=CHUNK_EPISODES):
            chunk = rows_from_batch(plan, batch)
            bar.update(len(chunk))
            yield chunk
    finally:
        bar.close()


def episode_record(dataset_id: int, split: str, row: dict[str, Any]) -> dict[str, Any]:
    """A table row as an ``episodes`` insert (column names)."""
    total = row.get("return")
    nan = total is not None and math.isnan(total)
    metadata = row.get("metadata") or None
    return {
        "dataset_id": dataset_id,
        "split": split,
        "episode": int(row["episode"]),
        "length": int(row["num_steps"]),
        "num_transitions": int(row["num_transitions"]),
        "return_value": None if total is None or nan else float(total),
        "return_nan": nan,
        "is_terminal": bool(row["terminated"]),
        "metadata": finite_json(metadata) if metadata else None,
    }


def value_records(
    dataset_id: int, split: str, row: dict[str, Any], fields: dict[str, str]
) -> list[dict[str, Any]]:
    """The row's typed metadata values as ``episode_values`` inserts."""
    out = []
    for key, value in (row.get("metadata") or {}).items():
        kind = fields.get(key)
        if kind is None or value is None:
            continue
        number = text = None
        if kind == "text":
            text = str(value)[:TEXT_LIMIT]
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isnan(number):
                number = None
        out.append(
            {
                "dataset_id": dataset_id,
                "split": split,
                "episode": int(row["episode"]),
                "key": key,
                "number": number,
                "text": text,
            }
        )
    return out
