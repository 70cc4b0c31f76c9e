"""Loaders of camera frames make only a few chunks ahead of a slow consumer (each chunk holds
decoded frames: memory is bounded by the shuffle buffer, not by AHEAD_EPISODES of them)."""

from __future__ import annotations

import threading
import time

from rlds_hub import data
from rlds_hub.data.chunks import ChunkSource
from rlds_hub.data.pipeline import FRAME_CHUNKS_AHEAD
from rlds_hub.testing.cameras import CameraWorkload, write_camera_datasets


def test_a_slow_consumer_holds_few_chunks_of_frames(tmp_path, monkeypatch) -> None:
    workload = CameraWorkload(episodes=8, steps=4, height=16, width=24)
    path = write_camera_datasets(tmp_path, workload, jpeg=False, workers=1).png
    made = []
    lock = threading.Lock()
    real = ChunkSource.make_items

    def counting(self, records, chunk, *ahead):
        with lock:
            made.append(chunk)
        return real(self, records, chunk, *ahead)

    monkeypatch.setattr(ChunkSource, "make_items", counting)
    loader = data.steps(path, batch_size=4, shuffle_buffer=1, episodes_per_chunk=1)
    batches = iter(loader)
    next(batches)  # the consumer holds chunk 0 and waits (training)
    time.sleep(1.0)
    assert len(made) <= 1 + FRAME_CHUNKS_AHEAD  # not all 8 chunks of frames
    assert sum(1 for _ in batches) == 8 * 4 // 4 - 1  # and every step still comes


def test_windows_of_frames_are_not_gathered_for_a_whole_chunk(tmp_path) -> None:
    """With history, a chunk's frames are gathered a couple of batches at a time: the loader
    never holds the chunk's items x (history + 1) frames at once."""
    import tracemalloc

    workload = CameraWorkload(episodes=4, steps=20, height=48, width=64)
    path = write_camera_datasets(tmp_path, workload, jpeg=False, workers=1).png
    frame = 48 * 64 * 3
    history = 7
    whole_chunk = workload.episodes * workload.steps * 2 * frame * (history + 1)  # 11.8 MB
    loader = data.steps(
        path,
        batch_size=4,
        history=history,
        shuffle_buffer=4,
        episodes_per_chunk=4,
        keys=["observation"],
    )
    tracemalloc.start()
    try:
        count = 0
        for batch in loader:
            count += len(batch["step_index"])
            assert batch["observation"]["image"].shape == (4, history + 1, 48, 64, 3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == workload.episodes * workload.steps
    assert peak < whole_chunk, f"peak {peak} bytes"
