"""Camera frames of a loader's chunk, decoded where the items need them.

A chunk's records are decoded with its camera frames left encoded (:func:`encoded_plan`);
then:

- single steps without history show each frame once: the frames stay encoded in the chunk
  (its records' bytes, ~30-130 KB a frame) and each block of batches decodes only its own
  frames, straight into the block's arrays (:class:`FrameGather`; by the worker processes
  of :mod:`rlds_hub.format.frame_processes` where they are used): nothing is decoded into
  a chunk-sized array and copied out again;
- windows, histories and transitions show a frame in several items: a chunk's frames are
  decoded once, into one array (:meth:`EncodedFrames.decode_all`, no per-episode arrays
  joined afterwards), and gathered as before.

A frame that does not decode raises :class:`~rlds_hub.storage.reader.EpisodeDecodeError`
naming the dataset, shard file, episode, record, step and field, as the eager decoder did.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlds_hub.format.decode import NUM_STEPS, EpisodeDecoder
from rlds_hub.format.frame_processes import decode_into, frames_array
from rlds_hub.format.images import FrameBuffers, FrameDecodeError, decode_frames
from rlds_hub.format.plan import Leaf, LeafKind, Plan
from rlds_hub.storage.reader import EpisodeDecodeError, decode_records

_STEPS = "steps/"


def encoded_plan(plan: Plan) -> Plan:
    """``plan`` with every step's camera frame left encoded: one ``bytes`` object a step."""
    return Plan(
        dataclasses.replace(leaf, kind=LeafKind.STRING, dtype=np.dtype(object), shape=())
        if _is_frame(leaf)
        else leaf
        for leaf in plan.leaves
    )


def _is_frame(leaf: Leaf) -> bool:
    return leaf.kind == LeafKind.IMAGE and leaf.in_steps


@dataclasses.dataclass(frozen=True)
class ChunkFrames:
    """Where a chunk's steps came from: its records and the first step of each."""

    dataset: str
    records: Sequence[Any]  # storage.reader.EpisodeRecord
    starts: np.ndarray  # [episodes] position of each episode's first step in the chunk

    def error(self, leaf: Leaf, position: int, reason: str, *, named: bool) -> Exception:
        """The error for the chunk's step ``position`` of ``leaf`` (``named``: with the
        dataset's path in front, for errors raised outside the chunk's decoding)."""
        episode = int(np.searchsorted(self.starts, position, side="right")) - 1
        record = self.records[episode]
        step = position - int(self.starts[episode])
        message = (
            f"episode {record.index} ({os.path.basename(record.shard)}, record "
            f"{record.position}) does not decode: {leaf.key}: step {step}: {reason}"
        )
        return EpisodeDecodeError(f"{self.dataset}: {message}" if named else message)


@dataclasses.dataclass(frozen=True)
class EncodedFrames:
    """One camera's frames of a chunk, still encoded: ``blobs`` ``[steps]`` of ``bytes``."""

    blobs: np.ndarray
    leaf: Leaf  # the image leaf (shape, dtype)
    source: ChunkFrames
    buffers: FrameBuffers  # where decoded frames go (memory reused once dropped)

    def __len__(self) -> int:
        return len(self.blobs)

    def decode(self, positions: np.ndarray) -> np.ndarray:
        """The frames at the chunk's step ``positions``, ``[len(positions), *shape]``.

        Raises:
          EpisodeDecodeError: naming the dataset, file, episode, step and field.
        """
        out = frames_array(len(positions), self.leaf, self.buffers)
        try:
            return decode_into(list(self.blobs[positions]), self.leaf, out)
        except FrameDecodeError as e:
            where = int(positions[e.position])
            raise self.source.error(self.leaf, where, e.reason, named=True) from None

    def decode_all(self) -> np.ndarray:
        """Every frame of the chunk, in one array (errors as from the chunk's decoding).

        Decoded by threads, not the worker processes: chunk-sized arrays in the shared
        arena made windows slower (docs/benchmarks.md, "Camera frames")."""
        out = self.buffers.array((len(self.blobs), *self.leaf.shape), self.leaf.dtype)
        try:
            return decode_frames(list(self.blobs), self.leaf, out)
        except FrameDecodeError as e:
            raise self.source.error(self.leaf, e.position, e.reason, named=False) from None


class FrameRows:
    """Rows of camera frames made a block at a time when gathered (as
    :class:`rlds_hub.data.chunks.Deferred` gathers decoded rows), into reused memory."""

    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def gather(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Items ``lo:hi`` (default all)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class FrameGather(FrameRows):
    """Frames ``frames[index]``, decoded when gathered."""

    frames: EncodedFrames
    index: np.ndarray

    def gather(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        return self.frames.decode(self.index[lo:hi])


@dataclasses.dataclass(frozen=True)
class DecodedGather(FrameRows):
    """Rows ``values[index]`` of decoded frames (``index`` may hold a history axis)."""

    values: np.ndarray
    index: np.ndarray
    buffers: FrameBuffers

    def gather(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        index = self.index[lo:hi]
        out = self.buffers.array((*index.shape, *self.values.shape[1:]), self.values.dtype)
        # mode="clip" writes straight into ``out`` (the index kernels' indices are in range)
        return np.take(self.values, index, axis=0, out=out, mode="clip")


class FrameChunks:
    """Decodes a loader's chunks of records with their camera frames left encoded."""

    def __init__(self, plan: Plan, dataset: str):
        self.dataset = dataset
        self.frames = [leaf for leaf in plan.leaves if _is_frame(leaf)]
        self.decoder = EpisodeDecoder(encoded_plan(plan))
        # the chunks' and blocks' frames, reused when dropped (an idle budget in bytes)
        self.buffers = FrameBuffers()

    def decode(self, records: Sequence[Any], *, keep_encoded: bool) -> dict[str, Any]:
        """The records decoded as :class:`EpisodeDecoder` does, the camera frames as
        :class:`EncodedFrames` (``keep_encoded``) or decoded into one array each.

        Raises:
          EpisodeDecodeError: a record or frame that does not decode (without the dataset's
            path: the caller adds it, as for every other field).
        """
        decoded: dict[str, Any] = decode_records(self.decoder, records)
        lengths = decoded[NUM_STEPS]
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        source = ChunkFrames(self.dataset, records, starts)
        for leaf in self.frames:
            frames = EncodedFrames(decoded[leaf.key], leaf, source, self.buffers)
            decoded[leaf.key] = frames if keep_encoded else frames.decode_all()
        return decoded

    def rows(self, values: Any, index: np.ndarray) -> FrameRows:
        """The rows ``values[index]`` of one camera (encoded or decoded), made a block at a
        time when gathered."""
        if isinstance(values, EncodedFrames):
            return FrameGather(values, index)
        return DecodedGather(values, index, self.buffers)
