"""The index's tables: one row per dataset, one per episode, one per episode-metadata value.

Listing and filtering read only these tables (never a shard). Episode metadata is kept
twice on purpose: as JSON on the episode row (returned as is) and as typed rows in
``episode_values`` (``number`` or ``text``, indexed), so equality and range filters on any
metadata field are indexed queries on both SQLite and PostgreSQL.

Non-finite numbers: SQLite cannot store NaN (it becomes NULL), so a NaN return is stored
as ``return_value`` NULL with ``return_nan`` true; infinities are stored as such. JSON
columns hold NaN / Infinity as the strings "NaN", "Infinity", "-Infinity" (PostgreSQL's
JSON type rejects the bare tokens), which is also how the API returns them.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Dataset states.
STATUS_OK = "ok"
STATUS_ERROR = "error"  # the last indexing or read failed (``error`` says why)
STATUS_MISSING = "missing"  # the directory disappeared after indexing


def new_token() -> str:
    """A value no dataset row ever had: names one state of a row in per-process caches."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """The index's declarative base (the metadata Alembic compares migrations with)."""


class DatasetRow(Base):
    """A dataset directory, what indexing found in it, and its state."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    path: Mapped[str] = mapped_column(String(4096), unique=True)
    root: Mapped[str] = mapped_column(String(4096))
    registered: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=STATUS_OK)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    tfds_name: Mapped[str] = mapped_column(String(255), default="")
    version: Mapped[str] = mapped_column(String(64), default="")
    file_format: Mapped[str] = mapped_column(String(32), default="tfrecord")
    layout: Mapped[str | None] = mapped_column(String(16), nullable=True)
    num_episodes: Mapped[int] = mapped_column(BigInteger, default=0)
    num_steps: Mapped[int] = mapped_column(BigInteger, default=0)
    num_transitions: Mapped[int] = mapped_column(BigInteger, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    features: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    splits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    statistics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    checksums: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # {metadata field: "number" | "text" | "bool"} of the episode metadata fields
    episode_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    search_text: Mapped[str] = mapped_column(Text, default="")
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    generation: Mapped[int] = mapped_column(Integer, default=0)
    # Changes with every write of the row and is never reused (row ids are, on SQLite, after
    # a DELETE): every answer a process keeps about a dataset is keyed by it.
    token: Mapped[str | None] = mapped_column(
        String(32), nullable=True, default=new_token, onupdate=new_token
    )
    indexed_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    index_seconds: Mapped[float] = mapped_column(Double, default=0.0)


class EpisodeRow(Base):
    """One episode: its place, length, return, termination and metadata."""

    __tablename__ = "episodes"
    # Orderings by return or length, within a split or across splits, read an index in
    # order (ties by split and episode) instead of sorting the matching rows.
    __table_args__ = (
        Index("ix_episodes_split_return", "dataset_id", "split", "return_value", "episode"),
        Index("ix_episodes_split_length", "dataset_id", "split", "length", "episode"),
        Index("ix_episodes_return", "dataset_id", "return_value", "split", "episode"),
        Index("ix_episodes_length", "dataset_id", "length", "split", "episode"),
    )

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    split: Mapped[str] = mapped_column(String(128), primary_key=True)
    index: Mapped[int] = mapped_column("episode", BigInteger, primary_key=True)
    length: Mapped[int] = mapped_column(BigInteger)  # RLDS steps
    num_transitions: Mapped[int] = mapped_column(BigInteger)
    return_value: Mapped[float | None] = mapped_column(Double, nullable=True)
    return_nan: Mapped[bool] = mapped_column(Boolean, default=False)
    is_terminal: Mapped[bool] = mapped_column(Boolean)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)


class EpisodeValueRow(Base):
    """One scalar episode-metadata value, typed, for indexed filters."""

    __tablename__ = "episode_values"
    __table_args__ = (
        Index("ix_episode_values_number", "dataset_id", "key", "number"),
        Index("ix_episode_values_text", "dataset_id", "key", "text"),
    )

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    split: Mapped[str] = mapped_column(String(128), primary_key=True)
    index: Mapped[int] = mapped_column("episode", BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    number: Mapped[float | None] = mapped_column(Double, nullable=True)
    text: Mapped[str | None] = mapped_column(String(1024), nullable=True)


class ExcludedPathRow(Base):
    """A dataset directory removed from the index: scans skip it until it is registered."""

    __tablename__ = "excluded_paths"

    path: Mapped[str] = mapped_column(String(4096), primary_key=True)
    removed_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True))
