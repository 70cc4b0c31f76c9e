"""JPEG frames served as stored: the encoded bytes of an image field's frames, read from the
episode's record without decoding them (no re-encoding, no loss, no decode cost).

An episode's stored frames are kept in the reader's episode cache (packed in two arrays so
that the cache counts their bytes) under a key that cannot be confused with decoded
episodes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from rlds_hub.format.decode import EpisodeDecoder, ParseError
from rlds_hub.format.images import image_format
from rlds_hub.format.plan import Leaf, LeafKind
from rlds_hub.server.reading.episodes import DatasetUnavailable, EpisodeReader
from rlds_hub.storage import DatasetError, read_record


class StoredFrames:
    """One episode's frames of one image field, as stored (encoded bytes), by step."""

    def __init__(self, packed: dict[str, np.ndarray]):
        self._bytes = packed["bytes"]
        self._ends = packed["ends"]

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, step: int) -> bytes:
        step = range(len(self))[step]  # IndexError outside; negative counts from the end
        start = int(self._ends[step - 1]) if step else 0
        return self._bytes[start : int(self._ends[step])].tobytes()


def stored_frames(
    reader: EpisodeReader, row: Any, split: str, index: int, leaf: Leaf
) -> StoredFrames | None:
    """The stored frames of ``leaf`` in episode ``index`` when the field is JPEG-encoded (or
    of a format detected per frame); None otherwise, or when the record cannot be read (the
    decoding path then says why)."""
    if leaf.kind != LeafKind.IMAGE or leaf.image_format not in ("jpeg", None):
        return None
    key = (row.path, row.generation, split, index, "stored", leaf.key)
    try:
        packed = reader.episodes.get_or_load(key, lambda: _read(reader, row, split, index, leaf))
    except (DatasetUnavailable, DatasetError, OSError, ParseError):
        return None
    return StoredFrames(packed)


def _read(
    reader: EpisodeReader, row: Any, split: str, index: int, leaf: Leaf
) -> dict[str, np.ndarray]:
    record = read_record(reader.dataset(row), split, index)
    as_bytes = dataclasses.replace(
        leaf, kind=LeafKind.STRING, dtype=np.dtype(object), shape=(), image_format=None
    )
    values, _ = EpisodeDecoder([as_bytes]).decode_episode(record.data)
    blobs = [bytes(blob) for blob in values[leaf.key]]
    lengths = np.array([len(blob) for blob in blobs], dtype=np.int64)
    return {"bytes": np.frombuffer(b"".join(blobs), dtype=np.uint8), "ends": np.cumsum(lengths)}


def servable_jpeg(blob: bytes, leaf: Leaf) -> bool:
    """True for a JPEG frame whose header reads and gives the feature's size (anything else
    goes through the decoder, which names what is wrong)."""
    if image_format(blob) != "jpeg":
        return False
    import simplejpeg

    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(blob)
    except ValueError:
        return False
    return (height, width) == tuple(leaf.shape[:2])
