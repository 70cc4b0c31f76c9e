"""Decoding a chunk's records when some camera frames do not decode (``skip_corrupt=True``
in :func:`rlds_hub.data.steps`): the bad frames are found one by one and their steps
marked, so the loader skips those steps and counts them, instead of stopping.

Only records that fail go the slow way: the others decode as usual. A record that does not
decode for another reason than a frame (a truncated record, a field of the wrong length) is
skipped whole, and counted too.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlds_hub.format.decode import (
    NUM_STEPS,
    EpisodeDecoder,
    ParseError,
    bytes_values,
    parse_features,
)
from rlds_hub.format.images import ImageDecodeError, decode_image
from rlds_hub.format.plan import LeafKind, Plan
from rlds_hub.storage.reader import EpisodeDecodeError, decode_records


@dataclasses.dataclass
class Skipped:
    """What a loader skipped so far: steps (items), frames, whole episodes, and the first
    few reports (each naming the dataset, file, episode, record, step and field)."""

    steps: int = 0
    frames: int = 0
    episodes: int = 0
    reports: list[str] = dataclasses.field(default_factory=list)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add(self, *, steps: int = 0, frames: int = 0, episodes: int = 0, reports=()) -> None:
        with self._lock:
            self.steps += steps
            self.frames += frames
            self.episodes += episodes
            self.reports.extend(list(reports)[: max(0, 20 - len(self.reports))])


def decode_skipping(
    decoder: EpisodeDecoder, records: Sequence[Any], dataset: str
) -> tuple[dict[str, np.ndarray], np.ndarray, list[Any], list[str], int]:
    """Decodes ``records`` (storage ``EpisodeRecord`` s), skipping what does not decode.

    Returns the decoded arrays (as :meth:`EpisodeDecoder.decode`, of the records kept), a
    ``[sum of steps]`` bool mask of steps whose frame was replaced by zeros, the records
    kept, reports of what was skipped, and how many frames were bad.
    """
    try:
        decoded = decode_records(decoder, records)
        return decoded, np.zeros(int(decoded[NUM_STEPS].sum()), bool), list(records), [], 0
    except EpisodeDecodeError:
        pass
    parts: list[dict[str, np.ndarray]] = []
    bad_parts: list[np.ndarray] = []
    kept: list[Any] = []
    reports: list[str] = []
    bad_frames = 0
    for record in records:
        where = (
            f"{dataset}: episode {record.index} ({os.path.basename(record.shard)}, record "
            f"{record.position})"
        )
        try:
            arrays = decoder.decode([record.data])
            bad = np.zeros(int(arrays[NUM_STEPS].sum()), bool)
        except (ParseError, ImageDecodeError):
            try:
                arrays, bad, found = _frame_by_frame(decoder.plan, record.data, where)
            except (ParseError, ImageDecodeError, ValueError) as e:
                reports.append(f"{where} skipped whole: {e}")
                continue
            reports += found
            bad_frames += len(found)
        parts.append(arrays)
        bad_parts.append(bad)
        kept.append(record)
    if not parts:
        empty = {leaf.key: np.empty((0, *leaf.shape), leaf.dtype) for leaf in decoder.plan}
        return {**empty, NUM_STEPS: np.zeros(0, np.int64)}, np.zeros(0, bool), [], reports, 0
    decoded = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return decoded, np.concatenate(bad_parts), kept, reports, bad_frames


def _frame_by_frame(
    plan: Plan, data: bytes, where: str
) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
    """One record whose frames are decoded one at a time, a bad one replaced by zeros."""
    images = [leaf for leaf in plan.step_leaves if leaf.kind == LeafKind.IMAGE]
    others = [leaf for leaf in plan.leaves if leaf not in images]
    features = parse_features(memoryview(data))
    arrays: dict[str, np.ndarray] = {}
    if any(leaf.in_steps for leaf in others):
        arrays = EpisodeDecoder(Plan(others)).decode([data])  # raises if not only frames
        steps = int(arrays[NUM_STEPS][0])
    else:
        steps = None
    bad = None
    reports = []
    for leaf in images:
        found = features.get(leaf.key)
        blobs = bytes_values(found[1]) if found is not None else []
        if steps is None:
            steps = len(blobs)
        if len(blobs) != steps:
            raise ParseError(f"{leaf.key} has {len(blobs)} frames for {steps} steps")
        if bad is None:
            bad = np.zeros(steps, bool)
        frames = np.zeros((steps, *leaf.shape), leaf.dtype)
        for step, blob in enumerate(blobs):
            try:
                frames[step] = decode_image(blob, leaf)
            except ImageDecodeError as e:
                bad[step] = True
                reports.append(f"{where} step {step} {leaf.key}: {e}")
        arrays[leaf.key] = frames
    arrays[NUM_STEPS] = np.array([steps or 0], np.int64)
    ordered = {leaf.key: arrays[leaf.key] for leaf in plan.leaves}
    ordered[NUM_STEPS] = arrays[NUM_STEPS]
    return ordered, bad if bad is not None else np.zeros(steps or 0, bool), reports
