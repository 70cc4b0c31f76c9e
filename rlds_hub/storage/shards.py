"""Shard files: TFRecord framing (read with both CRCs checked, written with ``writev``),
ArrayRecord files, and concatenation for sealing shards. No TensorFlow.

Every read of a local shard opens a regular file inside ``within`` (the dataset's resolved
directory; by default the shard's own directory), checked each time it is opened (see
:mod:`rlds_hub.storage.containment`)."""

from __future__ import annotations

import functools
import os
import struct
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import crc32c

from rlds_hub.format.encode import Pieces
from rlds_hub.storage import containment, files, remote_shards
from rlds_hub.storage.tfrecord import ShardError, framed_data, mask, masked_crc, record_length

_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 1024


def _framed(record: Pieces | bytes) -> list[bytes | memoryview]:
    """A TFRecord's pieces: length, its masked CRC, the data, the data's masked CRC."""
    parts = record.parts if isinstance(record, Pieces) else [record]
    size = record.size if isinstance(record, Pieces) else len(record)
    crc = 0
    for part in parts:
        crc = crc32c.crc32c(part, crc)
    length = struct.pack("<Q", size)
    return [length, struct.pack("<I", masked_crc(length)), *parts, struct.pack("<I", mask(crc))]


def confining(path: str | os.PathLike, within: str | None) -> str | None:
    """The resolved directory a shard must lie in: ``within``, or by default the shard's own
    directory (None for a remote shard)."""
    text = os.fspath(path)
    if files.is_remote(text):
        return None
    if within is not None:
        return within
    return containment.real_directory(os.path.dirname(os.path.abspath(text)))


def read_bytes(path: str | os.PathLike, *, within: str | None = None) -> bytes:
    """A whole file (local, or a remote object in one GET)."""
    if files.is_remote(path):
        return remote_shards.read_object(os.fspath(path))
    try:
        return files.read_bytes(path, within=confining(path, within))
    except FileNotFoundError as e:
        raise ShardError(f"{os.fspath(path)}: the shard file is missing") from e


def map_file(path: str | os.PathLike, *, within: str | None = None) -> bytes | memoryview:
    """A whole shard file for reading (memory-mapped when local and large; see
    :func:`rlds_hub.storage.files.map_bytes`); a remote object in one GET."""
    if files.is_remote(path):
        return remote_shards.read_object(os.fspath(path))
    try:
        return files.map_bytes(path, within=confining(path, within))
    except FileNotFoundError as e:
        raise ShardError(f"{os.fspath(path)}: the shard file is missing") from e


def iter_tfrecord(
    path: str | os.PathLike, data: bytes | None = None, *, within: str | None = None
) -> Iterator[tuple[int, memoryview]]:
    """Yields ``(offset, record)`` from a TFRecord file, checking both CRCs of every record.

    Records are views of the file's bytes (no copy per record). ``data``: the file's
    content, if already read.

    Raises:
      ShardError: naming the file and byte offset of a truncated or corrupt record.
    """
    view = memoryview(map_file(path, within=within) if data is None else data)
    offset = 0
    index = 0
    while offset < len(view):
        length = record_length(path, view[offset : offset + 12], offset, index)
        end = offset + 12 + length
        if end + 4 > len(view):
            raise ShardError(
                f"{path}: truncated record at byte {offset} (record {index}, "
                f"{length} bytes expected)"
            )
        record = view[offset + 12 : end]
        (data_crc,) = struct.unpack("<I", view[end : end + 4])
        if masked_crc(record) != data_crc:
            raise ShardError(
                f"{path}: corrupt record data at byte {offset} (record {index}, CRC mismatch)"
            )
        yield offset, record
        offset = end + 4
        index += 1


def tfrecord_offsets(
    path: str | os.PathLike, *, within: str | None = None
) -> tuple[tuple[int, int], ...]:
    """``(offset, data length)`` of every record of a TFRecord file, from its 12-byte headers
    (each length's CRC checked; the data is not read). Cached per file, size and mtime; a
    remote object's per URL, size and ETag (:func:`.remote_shards.offsets`).

    Raises:
      ShardError: a missing file, or a truncated or corrupt header (file and byte named).
    """
    text = os.fspath(path)
    if files.is_remote(text):
        return remote_shards.offsets(text).records
    directory = confining(text, within)
    try:
        with containment.open_regular(text, directory) as f:
            info = os.fstat(f.fileno())
    except FileNotFoundError as e:
        raise ShardError(f"{text}: the shard file is missing") from e
    return _local_offsets(text, info.st_size, info.st_mtime_ns, directory)


@functools.lru_cache(maxsize=4096)
def _local_offsets(
    path: str, size: int, mtime_ns: int, within: str | None
) -> tuple[tuple[int, int], ...]:
    offsets = []
    with containment.open_regular(path, within) as f:
        fd = f.fileno()
        offset = 0
        while offset < size:
            length = record_length(path, os.pread(fd, 12, offset), offset, len(offsets))
            if offset + 16 + length > size:
                raise ShardError(
                    f"{path}: truncated record at byte {offset} (record "
                    f"{len(offsets)}, {length} bytes expected)"
                )
            offsets.append((offset, length))
            offset += 16 + length
    return tuple(offsets)


def read_tfrecord_at(path: str | os.PathLike, position: int, *, within: str | None = None) -> bytes:
    """Record ``position`` of a TFRecord file, reading only it (both CRCs checked).

    Raises:
      ShardError: a missing, truncated or corrupt file or record, or no such position.
    """
    text = os.fspath(path)
    if files.is_remote(text):  # one ranged GET, pinned to the offsets' ETag
        return remote_shards.read_record(text, position)
    offsets = tfrecord_offsets(text, within=within)
    if not 0 <= position < len(offsets):
        raise ShardError(f"{text} holds {len(offsets)} records; there is no record {position}")
    start, length = offsets[position]
    try:
        with containment.open_regular(text, confining(text, within)) as f:
            frame = os.pread(f.fileno(), length + 16, start)
    except FileNotFoundError as e:
        raise ShardError(f"{text}: the shard file is missing") from e
    return framed_data(text, frame, start, position, length)


def framed(record: Pieces | bytes) -> list[bytes | memoryview]:
    """A TFRecord's pieces: length, its masked CRC, the data, the data's masked CRC."""
    return _framed(record)


def write_tfrecord_fd(fd: int, records: Sequence[Pieces | bytes], *, sync: bool) -> int:
    """Writes ``records`` as TFRecords to the open file ``fd``, then closes it; returns the
    bytes written."""
    pieces = [piece for record in records for piece in _framed(record)]
    size = sum(len(p) for p in pieces)
    try:
        _write_all(fd, pieces)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return size


def _write_all(fd: int, pieces: list[bytes | memoryview]) -> None:
    """``writev`` in batches of at most IOV_MAX buffers, resuming after short writes."""
    views = [memoryview(p).cast("B") for p in pieces if len(p)]
    while views:
        batch = views[:_IOV_MAX]
        written = os.writev(fd, batch)
        consumed = 0
        while consumed < len(batch) and written >= len(batch[consumed]):
            written -= len(batch[consumed])
            consumed += 1
        views = views[consumed:]
        if written:
            views[0] = views[0][written:]


def append_file(source: Path, fd: int) -> int:
    """Appends the file ``source`` to the open file ``fd`` (kernel-side copy); returns the
    bytes copied."""
    with open(source, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        copied = 0
        while copied < size:
            n = os.copy_file_range(src.fileno(), fd, size - copied)
            if n == 0:
                raise OSError(f"short copy from {source}")
            copied += n
    return size


def concatenate_files(sources: Sequence[Path], dest: Path, *, sync: bool) -> int:
    """Writes the concatenation of ``sources`` to ``dest`` (kernel-side copy); returns its size."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    total = 0
    try:
        for source in sources:
            total += append_file(source, fd)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return total


def write_array_record_file(path: Path, records: Sequence[Pieces | bytes], *, sync: bool) -> int:
    """Writes ``records`` as an ArrayRecord file (TFDS's options); returns its size in bytes."""
    from array_record.python import array_record_module

    writer = array_record_module.ArrayRecordWriter(os.fspath(path), "group_size:1")
    try:
        for record in records:
            writer.write(record.tobytes() if isinstance(record, Pieces) else record)
    finally:
        writer.close()
    if sync:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return os.path.getsize(path)


def read_array_record_file(
    path: str | os.PathLike,
    indices: Sequence[int] | None = None,
    *,
    within: str | None = None,
) -> list[bytes]:
    """Records of an ArrayRecord file (all, or those at ``indices``), in order.

    Raises:
      ShardError: the file is missing or corrupt.
    """
    text = os.fspath(path)
    if files.is_remote(text):  # ArrayRecord's reader reads local files: fetch it in one GET
        with tempfile.NamedTemporaryFile(suffix=".array_record") as local:
            local.write(read_bytes(text))
            local.flush()
            return _read_array_record(local.name, text, indices)
    target = text
    directory = confining(text, within)
    if directory is not None:
        target = containment.confine(text, directory)
        try:
            containment.open_regular(target, directory).close()
        except FileNotFoundError as e:
            raise ShardError(f"{text}: the shard file is missing") from e
    return _read_array_record(target, text, indices)


def _read_array_record(target: str, text: str, indices: Sequence[int] | None) -> list[bytes]:
    """Records of the local ArrayRecord file ``target`` (``text``: its name in messages)."""
    from array_record.python import array_record_module

    try:
        reader = array_record_module.ArrayRecordReader(target)
    except Exception as e:  # riegeli raises plain RuntimeErrors
        raise ShardError(f"{text}: not a readable ArrayRecord file ({e})") from e
    try:
        if indices is None:
            return list(reader.read_all())
        return list(reader.read(list(indices)))
    except Exception as e:
        raise ShardError(f"{text}: corrupt ArrayRecord data ({e})") from e
    finally:
        reader.close()


def read_records(
    path: str | os.PathLike,
    file_format: str,
    *,
    skip: int = 0,
    take: int | None = None,
    within: str | None = None,
    data: bytes | None = None,
) -> list[bytes | memoryview]:
    """Records ``[skip, skip + take)`` of a shard file in either format (every TFRecord
    of the file is CRC-checked). ``data``: a TFRecord file's content, if already fetched
    (e.g. by :class:`.remote_shards.Prefetch`).

    Raises:
      ShardError: the file is missing, truncated or corrupt, or holds fewer records.
    """
    if file_format == "array_record":
        if take is None:
            return read_array_record_file(path, within=within)[skip:]
        return read_array_record_file(path, range(skip, skip + take), within=within)
    records = [record for _, record in iter_tfrecord(path, data, within=within)]
    end = len(records) if take is None else skip + take
    if end > len(records):
        raise ShardError(
            f"{path} holds {len(records)} episodes, fewer than dataset_info.json lists "
            f"({end}); run `rlds-hub validate` on the dataset"
        )
    return records[skip:end]
