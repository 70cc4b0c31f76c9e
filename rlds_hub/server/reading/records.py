"""Random access to one episode's record: the service reads single episodes, and the core
reader (``rlds_hub.storage.read_episode``) reads and CRC-checks the whole shard holding it
(tens of MB for shards of 1,000 episodes) to return one. Here the position comes from the
core (:class:`~rlds_hub.storage.Selection`), a TFRecord shard's record offsets are found
once by walking its 12-byte headers (cached per file, size and mtime), and only the
episode's record is read, both its CRCs checked with the core's ``masked_crc``, and decoded
by the core's decoder. ArrayRecord shards are read at the position directly (the core's
``read_array_record_file``). ``benchmarks/server_load.py`` measures both ways.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import numpy as np

from rlds_hub.format.decode import EpisodeDecoder, ParseError
from rlds_hub.format.images import ImageDecodeError
from rlds_hub.server.core.cache import LRUCache
from rlds_hub.storage import RLDSDataset, Selection, ShardError
from rlds_hub.storage.reader import decoder_for
from rlds_hub.storage.shards import masked_crc, read_array_record_file

_HEADER = struct.Struct("<QI")


class RecordLocator:
    """Finds and reads single episode records (offset tables kept per shard file)."""

    def __init__(self, shards: int = 4096):
        self._offsets: LRUCache[list[tuple[int, int]]] = LRUCache(shards)

    def read(self, dataset: RLDSDataset, split: str, index: int,
             keys: Sequence[str] | None) -> dict[str, np.ndarray]:
        """Flat arrays of episode ``index`` of ``split`` (only ``keys``; None: every leaf).

        Raises:
          ShardError: the shard is missing, truncated or corrupt (file and byte named), or
            the record does not decode.
        """
        (read,) = Selection(dataset, split, (index,)).shard_reads()
        if dataset.file_format == "array_record":
            (record,) = read_array_record_file(read.path, [read.skip])
            where = f"record {read.skip}"
        else:
            record, offset = self._tfrecord(read.path, read.skip, read.shard_episodes)
            where = f"byte {offset} (record {read.skip})"
        decoder = self._decoder(dataset, keys)
        try:
            values, _ = decoder.decode_episode(record)
        except (ParseError, ImageDecodeError) as e:
            raise ShardError(f"{read.path}: episode {index} at {where} does not decode: {e}"
                             ) from e
        return {key: np.array(value) for key, value in values.items()}  # own the memory

    @staticmethod
    def _decoder(dataset: RLDSDataset, keys: Sequence[str] | None) -> EpisodeDecoder:
        """The decoder of ``keys``, kept with the opened dataset."""
        key = ("rlds_hub.server decoder", None if keys is None else tuple(keys))
        decoder = dataset.cache.get(key)
        if decoder is None:
            decoder = dataset.cache[key] = decoder_for(dataset, keys)
        return decoder

    def _tfrecord(self, path: str, position: int, listed: int) -> tuple[bytes, int]:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError as e:
            raise ShardError(f"{path}: the shard file is missing") from e
        try:
            info = os.fstat(fd)
            key = (path, info.st_size, info.st_mtime_ns)
            offsets = self._offsets.get_or_load(key, lambda: _record_offsets(fd, path,
                                                                             info.st_size))
            if len(offsets) != listed:
                raise ShardError(f"{path} holds {len(offsets)} episodes but dataset_info.json "
                                 f"lists {listed}; run `rlds-hub validate` on the dataset")
            start, length = offsets[position]
            frame = os.pread(fd, length + 16, start)
        finally:
            os.close(fd)
        if len(frame) != length + 16:
            raise ShardError(f"{path}: truncated record at byte {start} (record {position})")
        size, size_crc = _HEADER.unpack_from(frame)
        if size != length or masked_crc(frame[:8]) != size_crc:
            raise ShardError(f"{path}: corrupt record length at byte {start} (record "
                             f"{position}, CRC mismatch)")
        data = memoryview(frame)[12:12 + length]
        (data_crc,) = struct.unpack_from("<I", frame, 12 + length)
        if masked_crc(data) != data_crc:
            raise ShardError(f"{path}: corrupt record data at byte {start} (record {position}, "
                             "CRC mismatch)")
        return frame[12:12 + length], start


def _record_offsets(fd: int, path: str, size: int) -> list[tuple[int, int]]:
    """``(offset, data length)`` of every record, from the headers (length CRC checked)."""
    offsets = []
    offset = 0
    while offset < size:
        header = os.pread(fd, 12, offset)
        if len(header) < 12:
            raise ShardError(f"{path}: truncated record header at byte {offset} "
                             f"(record {len(offsets)})")
        length, length_crc = _HEADER.unpack(header)
        if masked_crc(header[:8]) != length_crc:
            raise ShardError(f"{path}: corrupt record length at byte {offset} (record "
                             f"{len(offsets)}, CRC mismatch)")
        if offset + 16 + length > size:
            raise ShardError(f"{path}: truncated record at byte {offset} (record "
                             f"{len(offsets)}, {length} bytes expected)")
        offsets.append((offset, length))
        offset += 16 + length
    return offsets
