"""TFRecord framing: the masked CRC32C, a record's checked 12-byte header, and one framed
record's checked data. Shared by local and remote shard reads (:mod:`.shards`,
:mod:`.remote_shards`). No TensorFlow."""

from __future__ import annotations

import os
import struct

import crc32c

from rlds_hub.storage.dataset_files import DatasetError

_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF
HEADER = 12  # length (8 bytes) and its masked CRC (4)
FRAMING = 16  # the header and the data's masked CRC (4)


class ShardError(DatasetError):
    """A shard file that is missing, truncated or corrupt (the message names file and byte)."""


def mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def masked_crc(data: bytes | memoryview) -> int:
    """TFRecord's masked CRC32C."""
    return mask(crc32c.crc32c(data))


def record_length(
    path: str | os.PathLike, header: bytes | memoryview, offset: int, index: int
) -> int:
    """The data length in a TFRecord's 12-byte header, its CRC checked."""
    if len(header) < HEADER:
        raise ShardError(f"{path}: truncated record header at byte {offset} (record {index})")
    length, length_crc = struct.unpack("<QI", header)
    if masked_crc(header[:8]) != length_crc:
        raise ShardError(
            f"{path}: corrupt record length at byte {offset} (record {index}, CRC mismatch)"
        )
    return length


def framed_data(
    path: str | os.PathLike, frame: bytes, start: int, position: int, length: int
) -> bytes:
    """The data of one framed record read whole (``length + 16`` bytes from byte ``start``),
    both CRCs checked.

    Raises:
      ShardError: the frame is short or a CRC does not match (file, byte and record named).
    """
    if len(frame) != length + FRAMING:
        raise ShardError(f"{path}: truncated record at byte {start} (record {position})")
    if masked_crc(frame[:8]) != struct.unpack_from("<I", frame, 8)[0]:
        raise ShardError(
            f"{path}: corrupt record length at byte {start} (record {position}, CRC mismatch)"
        )
    data = memoryview(frame)[HEADER : HEADER + length]
    if masked_crc(data) != struct.unpack_from("<I", frame, HEADER + length)[0]:
        raise ShardError(
            f"{path}: corrupt record data at byte {start} (record {position}, CRC mismatch)"
        )
    return frame[HEADER : HEADER + length]
