"""Defaults shared by the jobs and their command-line options (no Beam import)."""

from rlds_hub.storage.writer import (  # the recorder's defaults, shared
    DEFAULT_MAX_BYTES_PER_SHARD,
    DEFAULT_MAX_EPISODES_PER_SHARD,
)

__all__ = ["DEFAULT_MAX_BYTES_PER_SHARD", "DEFAULT_MAX_EPISODES_PER_SHARD", "DEFAULT_UNIT_BYTES"]
# A shard larger than this is read by several work units (record ranges).
DEFAULT_UNIT_BYTES = 128 * 2**20
