"""Camera frame sizes checked when a loader is built, from image headers (no decoding).

A dataset merged from two sources can hold episodes whose camera frames differ in size
(one camera 64x64, another episode's 48x64) while ``features.json`` declares one shape;
decoding would fail only when a loader reaches such an episode, maybe hours into training.
:func:`check_frame_shapes` reads the *header* of the first frame of every camera (PNG
``IHDR``, JPEG ``SOFn``: height and width, without decoding a pixel) of episodes of the
selection, and raises a :class:`FrameShapeError` naming the dataset, the field, the shapes
found and the episodes, if they differ from the declared shape or from each other.

What is read, and its cost:

- local TFRecord shards (rlds_hub's and TFDS's default): *every* selected episode. The
  shard is memory-mapped, record offsets come from the 12-byte record headers (cached per
  file), and only the Example's map-entry headers and the first frame's header are walked:
  a few pages per episode, no frame copied or decoded (about 50 us an episode: 3 ms for 60 episodes of 50
  steps with two cameras).
- ArrayRecord or remote shards: the first selected episode of each shard file (one record
  read per shard), a sample.

Later frames of an episode (and, for the sample, other episodes) are checked when decoded:
a frame of another size is an error naming dataset, file, episode, step and field (or, with
``skip_corrupt``, skipped and counted). Channels are not compared: the decoder converts
them to the declared number, as TensorFlow's ``decode_image(channels=...)`` does.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator

from rlds_hub.format.decode import parse_features
from rlds_hub.format.plan import Leaf, LeafKind
from rlds_hub.storage import files, shards
from rlds_hub.storage.dataset_files import DatasetError
from rlds_hub.storage.reader import read_record
from rlds_hub.storage.selection import Selection

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic...): not DHT
# (C4), JPG (C8) nor DAC (CC).
_SOF_MARKERS = frozenset({*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC})


class FrameShapeError(DatasetError):
    """Camera frames whose size differs across episodes or from the declared shape."""


def frame_size(blob: bytes | memoryview) -> tuple[int, int] | None:
    """``(height, width)`` of an encoded PNG or JPEG frame from its header alone; None when
    the bytes are neither, or the header is cut short (decoding reports those)."""
    if bytes(blob[:8]) == _PNG_SIGNATURE:
        if len(blob) < 24 or bytes(blob[12:16]) != b"IHDR":
            return None
        width, height = struct.unpack(">II", blob[16:24])
        return height, width
    if bytes(blob[:2]) != b"\xff\xd8":
        return None
    position = 2
    while position + 4 <= len(blob):
        if blob[position] != 0xFF:
            return None
        marker = blob[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            position += 2
            continue
        if marker == 0xDA:  # start of scan: no frame header before it
            return None
        (length,) = struct.unpack(">H", blob[position + 2 : position + 4])
        if marker in _SOF_MARKERS:
            if position + 9 > len(blob):
                return None
            height, width = struct.unpack(">HH", blob[position + 5 : position + 9])
            return height, width
        position += 2 + length
    return None


def image_leaves(selection: Selection, fields: Iterable[str] | None = None) -> list[Leaf]:
    """The selection's step image leaves, of ``fields`` (top-level names; None: all)."""
    wanted = None if fields is None else set(fields)
    return [
        leaf
        for leaf in selection.dataset.plan.step_leaves
        if leaf.kind == LeafKind.IMAGE and (wanted is None or leaf.field in wanted)
    ]


def _first_bytes(message: memoryview) -> memoryview | None:
    """The first value of a serialized ``BytesList`` (field 1), without reading the rest."""
    if len(message) < 2 or message[0] != 0x0A:
        return None
    length, shift, position = 0, 0, 1
    while position < len(message):
        byte = message[position]
        position += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return message[position : position + length]
    return None


def _records(selection: Selection) -> Iterator[tuple[int, str, memoryview]]:
    """``(episode, shard file, record)`` of every selected episode of local TFRecord shards
    (memory-mapped, nothing copied), else of the first selected episode of each shard."""
    dataset = selection.dataset
    within = dataset.real_path
    for read in selection.shard_reads():
        if dataset.file_format == "tfrecord" and not files.is_remote(read.path):
            offsets = shards.tfrecord_offsets(read.path, within=within)
            if len(offsets) >= read.skip + read.take:  # else read_record names the problem
                mapped = memoryview(shards.map_file(read.path, within=within))
                for k in range(read.skip, read.skip + read.take):
                    offset, length = offsets[k]
                    data = mapped[offset + 12 : offset + 12 + length]
                    yield read.first + k - read.skip, read.path, data
                continue
        record = read_record(dataset, selection.split, read.first)
        yield record.index, record.shard, memoryview(record.data)


def check_frame_shapes(selection: Selection, fields: Iterable[str] | None = None) -> None:
    """Checks the first frame of each camera of ``fields`` (top-level names; None: all) in
    the selected episodes (see the module's docstring for which, and the cost).

    Raises:
      FrameShapeError: frames of another height x width than declared, or than each other,
        naming the dataset, the field, the shapes and the episodes (and their files).
    """
    leaves = image_leaves(selection, fields)
    if not leaves or selection.num_episodes == 0:
        return
    dataset = selection.dataset
    # field -> (height, width) -> ["episode N (file)", ...]
    found: dict[str, dict[tuple[int, int], list[str]]] = {leaf.key: {} for leaf in leaves}
    for episode, shard, data in _records(selection):
        try:
            features = parse_features(data)
        except ValueError:  # a record that does not parse: decoding reports it
            continue
        where = f"episode {episode} ({os.path.basename(shard)})"
        for leaf in leaves:
            entry = features.get(leaf.key)
            first = _first_bytes(entry[1]) if entry is not None else None
            size = frame_size(first) if first is not None else None
            if size is not None:
                found[leaf.key].setdefault(size, []).append(where)
    problems = []
    for leaf in leaves:
        declared = tuple(leaf.shape[:2])
        sizes = found[leaf.key]
        if any(size != declared for size in sizes):
            listed = "; ".join(
                f"{h}x{w} (height x width) in {_some(episodes)}"
                for (h, w), episodes in sorted(sizes.items())
            )
            problems.append(
                f"{leaf.key}: the features declare frames of shape {tuple(leaf.shape)}, the "
                f"first frames found are {listed}"
            )
    if problems:
        raise FrameShapeError(
            f"{dataset.path} ({selection.split}): camera frames differ in size across episodes "
            f"or from the declared shape — " + " | ".join(problems) + ". Resize the frames of "
            "the odd episodes to one shape (e.g. in the pipeline that merged the sources), or "
            "select only the episodes of one shape (episodes=[...])"
        )


def _some(episodes: list[str], most: int = 5) -> str:
    shown = ", ".join(episodes[:most])
    return shown if len(episodes) <= most else f"{shown} and {len(episodes) - most} more"


__all__ = ["FrameShapeError", "check_frame_shapes", "frame_size", "image_leaves"]
