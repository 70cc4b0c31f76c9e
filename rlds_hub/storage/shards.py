"""Shard files: TFRecord framing (read with both CRCs checked, written with ``writev``),
ArrayRecord files, and concatenation for sealing shards. No TensorFlow.

Every read of a local shard opens a regular file inside ``within`` (the dataset's resolved
directory; by default the shard's own directory), checked each time it is opened (see
:mod:`rlds_hub.storage.containment`)."""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import crc32c

from rlds_hub.format.encode import Pieces
from rlds_hub.storage import containment, files
from rlds_hub.storage.dataset_files import DatasetError

_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 1024


def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def masked_crc(data: bytes | memoryview) -> int:
    """TFRecord's masked CRC32C."""
    return _mask(crc32c.crc32c(data))


def _framed(record: Pieces | bytes) -> list[bytes | memoryview]:
    """A TFRecord's pieces: length, its masked CRC, the data, the data's masked CRC."""
    parts = record.parts if isinstance(record, Pieces) else [record]
    size = record.size if isinstance(record, Pieces) else len(record)
    crc = 0
    for part in parts:
        crc = crc32c.crc32c(part, crc)
    length = struct.pack("<Q", size)
    return [length, struct.pack("<I", masked_crc(length)), *parts, struct.pack("<I", _mask(crc))]


class ShardError(DatasetError):
    """A shard file that is missing, truncated or corrupt (the message names file and byte)."""


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
    """A whole file (local, or remote through :mod:`rlds_hub.storage.files`)."""
    try:
        return files.read_bytes(path, within=confining(path, within))
    except FileNotFoundError as e:
        raise ShardError(f"{os.fspath(path)}: the shard file is missing") from e


def _record_length(
    path: str | os.PathLike, header: bytes | memoryview, offset: int, index: int
) -> int:
    """The data length in a TFRecord's 12-byte header, its CRC checked."""
    if len(header) < 12:
        raise ShardError(f"{path}: truncated record header at byte {offset} (record {index})")
    length, length_crc = struct.unpack("<QI", header)
    if masked_crc(header[:8]) != length_crc:
        raise ShardError(
            f"{path}: corrupt record length at byte {offset} (record {index}, CRC mismatch)"
        )
    return length


def map_file(path: str | os.PathLike, *, within: str | None = None) -> bytes | memoryview:
    """A whole shard file for reading (memory-mapped when local and large; see
    :func:`rlds_hub.storage.files.map_bytes`)."""
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
        length = _record_length(path, view[offset : offset + 12], offset, index)
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
    (each length's CRC checked; the data is not read). Cached per file, size and mtime.

    Raises:
      ShardError: a missing file, or a truncated or corrupt header (file and byte named).
    """
    text = os.fspath(path)
    if files.is_remote(text):
        data = read_bytes(text)
        return tuple((offset, len(record)) for offset, record in iter_tfrecord(text, data))
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
            length = _record_length(path, os.pread(fd, 12, offset), offset, len(offsets))
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
    offsets = tfrecord_offsets(text, within=within)
    if not 0 <= position < len(offsets):
        raise ShardError(f"{text} holds {len(offsets)} records; there is no record {position}")
    start, length = offsets[position]
    if files.is_remote(text):
        frame = read_bytes(text)[start : start + length + 16]
    else:
        try:
            with containment.open_regular(text, confining(text, within)) as f:
                frame = os.pread(f.fileno(), length + 16, start)
        except FileNotFoundError as e:
            raise ShardError(f"{text}: the shard file is missing") from e
    if len(frame) != length + 16:
        raise ShardError(f"{text}: truncated record at byte {start} (record {position})")
    if masked_crc(frame[:8]) != struct.unpack_from("<I", frame, 8)[0]:
        raise ShardError(
            f"{text}: corrupt record length at byte {start} (record {position}, CRC mismatch)"
        )
    data = memoryview(frame)[12 : 12 + length]
    if masked_crc(data) != struct.unpack_from("<I", frame, 12 + length)[0]:
        raise ShardError(
            f"{text}: corrupt record data at byte {start} (record {position}, CRC mismatch)"
        )
    return frame[12 : 12 + length]


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
    from array_record.python import array_record_module

    text = os.fspath(path)
    target = text
    directory = confining(text, within)
    if directory is not None:
        target = containment.confine(text, directory)
        try:
            containment.open_regular(target, directory).close()
        except FileNotFoundError as e:
            raise ShardError(f"{text}: the shard file is missing") from e
    elif not files.exists(text):
        raise ShardError(f"{text}: the shard file is missing")
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
) -> list[bytes | memoryview]:
    """Records ``[skip, skip + take)`` of a shard file in either format (every TFRecord
    of the file is CRC-checked).

    Raises:
      ShardError: the file is missing, truncated or corrupt, or holds fewer records.
    """
    if file_format == "array_record":
        if take is None:
            return read_array_record_file(path, within=within)[skip:]
        return read_array_record_file(path, range(skip, skip + take), within=within)
    records = [record for _, record in iter_tfrecord(path, within=within)]
    end = len(records) if take is None else skip + take
    if end > len(records):
        raise ShardError(
            f"{path} holds {len(records)} episodes, fewer than dataset_info.json lists "
            f"({end}); run `rlds-hub validate` on the dataset"
        )
    return records[skip:end]
