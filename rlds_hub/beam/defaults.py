"""Defaults shared by the jobs and their command-line options (no Beam import)."""

DEFAULT_MAX_EPISODES_PER_SHARD = 1000
DEFAULT_MAX_BYTES_PER_SHARD = 64 * 2**20
# A shard larger than this is read by several work units (record ranges).
DEFAULT_UNIT_BYTES = 128 * 2**20
