"""The initial index: datasets, episodes, episode-metadata values, excluded paths.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("path", sa.String(length=4096), nullable=False),
        sa.Column("root", sa.String(length=4096), nullable=False),
        sa.Column("registered", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tfds_name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("file_format", sa.String(length=32), nullable=False),
        sa.Column("layout", sa.String(length=16), nullable=True),
        sa.Column("num_episodes", sa.BigInteger(), nullable=False),
        sa.Column("num_steps", sa.BigInteger(), nullable=False),
        sa.Column("num_transitions", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("splits", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("statistics", sa.JSON(), nullable=False),
        sa.Column("checksums", sa.JSON(), nullable=False),
        sa.Column("episode_fields", sa.JSON(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("index_seconds", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("path"),
    )
    op.create_table(
        "excluded_paths",
        sa.Column("path", sa.String(length=4096), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("path"),
    )
    op.create_table(
        "episode_values",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(length=128), nullable=False),
        sa.Column("episode", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("number", sa.Double(), nullable=True),
        sa.Column("text", sa.String(length=1024), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id", "split", "episode", "key"),
    )
    op.create_index("ix_episode_values_number", "episode_values", ["dataset_id", "key", "number"])
    op.create_index("ix_episode_values_text", "episode_values", ["dataset_id", "key", "text"])
    op.create_table(
        "episodes",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(length=128), nullable=False),
        sa.Column("episode", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("num_transitions", sa.BigInteger(), nullable=False),
        sa.Column("return_value", sa.Double(), nullable=True),
        sa.Column("return_nan", sa.Boolean(), nullable=False),
        sa.Column("is_terminal", sa.Boolean(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id", "split", "episode"),
    )
    op.create_index(
        "ix_episodes_split_return", "episodes", ["dataset_id", "split", "return_value", "episode"]
    )
    op.create_index(
        "ix_episodes_split_length", "episodes", ["dataset_id", "split", "length", "episode"]
    )
    op.create_index(
        "ix_episodes_return", "episodes", ["dataset_id", "return_value", "split", "episode"]
    )
    op.create_index("ix_episodes_length", "episodes", ["dataset_id", "length", "split", "episode"])


def downgrade() -> None:
    for name in (
        "ix_episodes_length",
        "ix_episodes_return",
        "ix_episodes_split_length",
        "ix_episodes_split_return",
    ):
        op.drop_index(name, table_name="episodes")
    op.drop_table("episodes")
    op.drop_index("ix_episode_values_text", table_name="episode_values")
    op.drop_index("ix_episode_values_number", table_name="episode_values")
    op.drop_table("episode_values")
    op.drop_table("excluded_paths")
    op.drop_table("datasets")
