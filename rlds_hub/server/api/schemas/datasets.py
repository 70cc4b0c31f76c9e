"""Datasets: list items, detail (features tree, splits, statistics, ...), registration and
scan reports."""

from __future__ import annotations

import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from rlds_hub.server.index.discovery import NAME_PATTERN


class SplitSummary(BaseModel):
    episodes: int
    shards: int | None = None
    bytes: int | None = None
    steps: int | None = Field(default=None, description="RLDS steps, as rlds-hub info counts")
    transitions: int | None = None
    terminated: int | None = Field(default=None, description="episodes that terminated")


class DatasetItem(BaseModel):
    """A dataset as listed."""

    name: str
    path: str = Field(
        description="the dataset's directory relative to its root (the "
        "server's own directories are not shown)"
    )
    status: Literal["ok", "error", "missing"] = Field(
        description="ok; error: the last indexing or read failed (see error); missing: the "
        "directory vanished"
    )
    error: str | None = None
    tfds_name: str
    version: str
    file_format: str
    layout: str | None = Field(default=None, description="rlds (zero-filled last step) or oxe")
    num_episodes: int
    num_steps: int
    num_transitions: int
    size_bytes: int
    splits: dict[str, SplitSummary]
    env_name: str | None = None
    policy: str | None = None
    indexed_at: datetime.datetime | None = None


class FeatureNode(BaseModel):
    """A feature: a dict of children, or a leaf with its dtype, shape and encoding."""

    name: str
    key: str | None = Field(default=None, description="flattened key (leaves)")
    dtype: str | None = None
    shape: list[int] | None = None
    encoding: str | None = None
    image: bool = Field(default=False, description="served as frames (PNG)")
    class_label: dict[str, Any] | None = Field(
        default=None, description="a TFDS ClassLabel: num_classes and names (null if unnamed)"
    )
    children: list[FeatureNode] | None = None


class FeatureTree(BaseModel):
    steps: list[FeatureNode]
    episode: list[FeatureNode]


class DatasetDetail(DatasetItem):
    """Everything the index holds about a dataset."""

    root: int | None = Field(
        description="which of the server's roots holds it (0-based, in "
        "the order the server was given them; null: no longer a root)"
    )
    registered: bool = Field(description="registered through the API (not only found)")
    features: FeatureTree
    metadata: dict[str, Any]
    provenance: dict[str, Any]
    statistics: dict[str, dict[str, Any]] = Field(
        description="per split: rlds_hub.inspection statistics (saved or computed)"
    )
    checksums: dict[str, Any] = Field(description="algorithm and per-shard bytes and CRC32C")
    episode_fields: dict[str, Literal["number", "text", "bool"]] = Field(
        description="episode-metadata fields, filterable with meta="
    )
    image_fields: list[str] = Field(description="step fields served as frames")
    generation: int
    index_seconds: float


class RegisterRequest(BaseModel):
    path: str = Field(
        description="dataset directory: absolute, or relative to a root",
        min_length=1,
        max_length=4096,
    )
    name: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="default: its directory under the root, '/' as ':'",
    )


class OutcomeModel(BaseModel):
    name: str
    path: str
    action: Literal["indexed", "unchanged", "failed", "removed", "excluded"]
    episodes: int
    seconds: float
    error: str | None = None
    code: str | None = Field(
        default=None, description="why it failed: name_taken, dataset_unreadable"
    )


class ScanReportModel(BaseModel):
    outcomes: list[OutcomeModel]
    seconds: float
    indexed: int
    unchanged: int
    failed: int
    removed: int
    excluded: int = Field(description="found, but removed from the index through the API")


class Removed(BaseModel):
    name: str
    path: str
    removed: bool = True


FeatureNode.model_rebuild()
