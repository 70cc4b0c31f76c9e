"""Index rows to response models."""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlds_hub.format.features import is_image_spec
from rlds_hub.server.api.schemas.datasets import (
    DatasetDetail,
    DatasetItem,
    FeatureNode,
    FeatureTree,
    SplitSummary,
)
from rlds_hub.server.core.numbers import float_value


def _splits(row: Any) -> dict[str, SplitSummary]:
    return {
        name: SplitSummary(**{k: v for k, v in entry.items() if k in SplitSummary.model_fields})
        for name, entry in (row.splits or {}).items()
    }


def relative_path(path: str, root: str) -> str:
    """``path`` relative to ``root`` (POSIX; "." for the root itself): what the API shows
    instead of the server's directories."""
    relative = os.path.relpath(path, root) if root else os.path.basename(path)
    return "." if relative == os.curdir else relative.replace(os.sep, "/")


def _without_root(text: str | None, root: str) -> str | None:
    """A message with the root's directory left out of the paths it names."""
    if text is None or not root:
        return text
    return text.replace(root.rstrip("/") + "/", "")


def dataset_item(row: Any) -> DatasetItem:
    provenance = row.provenance or {}
    return DatasetItem(
        name=row.name,
        path=relative_path(row.path, row.root),
        status=row.status,
        error=_without_root(row.error, row.root),
        tfds_name=row.tfds_name,
        version=row.version,
        file_format=row.file_format,
        layout=row.layout,
        num_episodes=row.num_episodes,
        num_steps=row.num_steps,
        num_transitions=row.num_transitions,
        size_bytes=row.size_bytes,
        splits=_splits(row),
        env_name=_text(provenance.get("env_name")),
        policy=_text(provenance.get("policy")),
        indexed_at=_utc(row.indexed_at),
    )


def _utc(moment: datetime.datetime | None) -> datetime.datetime | None:
    """SQLite returns naive datetimes; the index writes UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.UTC)
    return moment


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def is_image_entry(entry: dict[str, Any]) -> bool:
    encoding = str(entry.get("encoding", ""))
    if "image" in encoding:
        return True
    dtype = entry.get("dtype")
    return (
        encoding == "bytes"
        and dtype == "uint8"
        and is_image_spec(tuple(entry.get("shape") or ()), dtype)
    )


def image_fields(features: dict[str, Any]) -> list[str]:
    return [entry["key"] for entry in features.get("steps", []) if is_image_entry(entry)]


def feature_tree(entries: list[dict[str, Any]]) -> list[FeatureNode]:
    """``describe_features`` leaves as a nested tree of named nodes."""
    roots: list[FeatureNode] = []
    for entry in entries:
        parts = entry["key"].split("/")
        level = roots
        for part in parts[:-1]:
            node = next((n for n in level if n.name == part and n.children is not None), None)
            if node is None:
                node = FeatureNode(name=part, children=[])
                level.append(node)
            level = node.children  # type: ignore[assignment]
        level.append(
            FeatureNode(
                name=parts[-1],
                key=entry["key"],
                dtype=entry.get("dtype"),
                shape=list(entry.get("shape") or []),
                encoding=entry.get("encoding"),
                image=is_image_entry(entry),
                class_label=entry.get("class_label"),
            )
        )
    return roots


def dataset_detail(row: Any, roots: Sequence[Path]) -> DatasetDetail:
    """The detail document; ``roots``: the server's roots (``root`` is a position in them)."""
    features = row.features or {}
    position = next((i for i, root in enumerate(roots) if str(root) == row.root), None)
    return DatasetDetail(
        **dataset_item(row).model_dump(),
        root=position,
        registered=row.registered,
        features=FeatureTree(
            steps=feature_tree(features.get("steps", [])),
            episode=feature_tree(features.get("episode", [])),
        ),
        metadata=row.metadata or {},
        provenance=row.provenance or {},
        statistics=row.statistics or {},
        checksums=row.checksums or {},
        episode_fields=row.episode_fields or {},
        image_fields=image_fields(features),
        generation=row.generation,
        index_seconds=row.index_seconds,
    )


def episode_values(row: Any) -> dict[str, Any]:
    """The fields of an :class:`~rlds_hub.server.api.schemas.episodes.EpisodeItem` from an
    ``episodes`` row."""
    if row.return_nan:
        total: float | str | None = "NaN"
    elif row.return_value is None:
        total = None
    else:
        total = float_value(row.return_value)
    return {
        "split": row.split,
        "index": row.episode,
        "length": row.length,
        "num_transitions": row.num_transitions,
        "return": total,
        "is_terminal": row.is_terminal,
        "metadata": row.metadata,
    }
