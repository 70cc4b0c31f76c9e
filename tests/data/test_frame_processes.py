"""Frames decoded by worker processes into shared memory (rlds_hub.format.frame_processes):
the same pixels and errors as the threads, a dead worker is an error (never a hang), the
arena's memory is reused and bounded, forked children use their own pool or threads."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading

import numpy as np
import pytest
import simplejpeg
from step_datasets import camera_dataset, corrupt_frame

from rlds_hub import data
from rlds_hub.format import frame_processes, images
from rlds_hub.format.frame_processes import FrameWorkerError, decode_into
from rlds_hub.format.images import FrameBuffers, FrameDecodeError, decode_frames
from rlds_hub.format.plan import Leaf, LeafKind
from rlds_hub.storage.reader import EpisodeDecodeError
from rlds_hub.testing.cameras import CameraWorkload, camera_frames

FRAMES = camera_frames(CameraWorkload(episodes=1, steps=40, height=24, width=40), 0, 0)
LEAF = Leaf("steps/observation/image", LeafKind.IMAGE, np.dtype(np.uint8), (24, 40, 3), True)


def _jpeg(frame: np.ndarray) -> bytes:
    return simplejpeg.encode_jpeg(frame, quality=90, colorspace="RGB", colorsubsampling="420")


BLOBS = [_jpeg(frame) for frame in FRAMES]


@pytest.fixture(autouse=True)
def processes(monkeypatch):
    """Workers for every call (``1``), two of them, a fresh pool per test."""
    monkeypatch.setenv(frame_processes.PROCESSES_ENV, "1")
    monkeypatch.setenv(images.THREADS_ENV, "2")
    frame_processes._forget_pool_in_child()
    yield
    if frame_processes._pool is not None:
        frame_processes._pool.close()
    frame_processes._forget_pool_in_child()


def _shared(count: int = len(BLOBS)) -> np.ndarray:
    out = frame_processes.frames_array(count, LEAF, FrameBuffers())
    assert frame_processes.frame_pool().arena.offset(out) is not None  # in the arena
    return out


def test_workers_decode_the_pixels_of_the_threads(monkeypatch) -> None:
    expected = np.stack([images.decode_image(blob, LEAF) for blob in BLOBS])
    out = _shared()

    def no_threads(*args) -> None:
        raise AssertionError("decoded in the parent, not by the workers")

    monkeypatch.setattr(images, "_decode_range", no_threads)  # the workers forked before
    assert decode_into([memoryview(b) for b in BLOBS], LEAF, out) is out
    assert np.array_equal(out, expected)
    assert out.ctypes.data % 64 == 0  # JAX on the CPU uses it uncopied


@pytest.mark.parametrize("bad_step", [0, 17, 39])
def test_a_corrupt_frame_in_a_worker_is_reported_with_its_step(bad_step) -> None:
    blobs = list(BLOBS)
    blobs[bad_step] = b"\xff\xd8\xff\xe0 not a JPEG"
    blobs[bad_step + 1 if bad_step < 39 else 0] = BLOBS[0]
    with pytest.raises(FrameDecodeError, match=rf"^step {bad_step}: cannot decode an image"):
        decode_into(blobs, LEAF, _shared())


def test_the_first_bad_step_is_named_across_workers() -> None:
    blobs = list(BLOBS)
    blobs[35] = blobs[6] = _jpeg(np.zeros((16, 40, 3), np.uint8))
    with pytest.raises(FrameDecodeError, match=r"^step 6: an image frame is 40x16"):
        decode_into(blobs, LEAF, _shared())


def test_a_worker_killed_while_idle_is_an_error_then_a_new_pool_decodes() -> None:
    out = _shared()
    pool = frame_processes.frame_pool()
    os.kill(pool.pids[0], signal.SIGKILL)
    with pytest.raises(FrameWorkerError, match=r"killed by signal 9 .*next call starts a new"):
        for _ in range(4):  # the first call may use the live worker only
            decode_into(BLOBS, LEAF, out)
    assert all(not p.is_alive() for p in (w.process for w in pool._all))  # all stopped
    again = _shared()
    assert frame_processes.frame_pool() is not pool
    assert np.array_equal(decode_into(BLOBS, LEAF, again), decode_frames(BLOBS, LEAF))


def _dies(blobs, leaf, out, lo, hi) -> None:
    os._exit(3)


def _raised_within(seconds: float, call) -> BaseException | None:
    """What ``call()`` raised, run on a thread given ``seconds`` (a hang fails the test)."""
    outcome: list = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still waiting after {seconds} s: a hang"
    return outcome[0]


def test_a_worker_dying_mid_frame_is_an_error_not_a_hang(monkeypatch) -> None:
    monkeypatch.setattr(frame_processes, "_decode_range", _dies)  # inherited by the fork
    out = _shared()
    error = _raised_within(30, lambda: decode_into(BLOBS, LEAF, out))
    assert isinstance(error, FrameWorkerError), error
    assert "exited (exit code 3) while decoding" in str(error)


def test_the_loader_gives_the_same_batches_with_processes_and_threads(monkeypatch) -> None:
    path = camera_dataset()

    def batches() -> list:
        loader = data.steps(path, batch_size=8, shuffle_buffer=2, episodes_per_chunk=1)
        windows = data.steps(path, batch_size=8, history=2, action_chunk=3, shuffle_buffer=2)
        return [b["observation"] for b in [*loader, *windows]]

    with_processes = batches()
    assert frame_processes._pool is not None and not frame_processes._pool.broken
    monkeypatch.setenv(frame_processes.PROCESSES_ENV, "0")
    with_threads = batches()
    assert len(with_processes) == len(with_threads) > 2
    for ours, theirs in zip(with_processes, with_threads, strict=True):
        for key in ours:
            assert np.array_equal(ours[key], theirs[key]), key


@pytest.mark.parametrize("history", [0, 2])
def test_a_corrupt_frame_in_a_loader_names_dataset_file_episode_step_field(tmp_path, history):
    path, record = corrupt_frame(camera_dataset(), tmp_path, step=1)
    with pytest.raises(EpisodeDecodeError) as error:
        list(data.steps(path, batch_size=4, history=history, episodes_per_chunk=1))
    message = str(error.value)
    for part in (path, "tfrecord-00000", f"record {record})", "step 1", "steps/observation/image"):
        assert part in message, message
    if not history:  # single steps' blocks: the workers decoded (histories: threads)
        assert frame_processes._pool is not None


def test_the_arena_reuses_freed_regions_and_joins_them() -> None:
    arena = frame_processes.Arena(1 << 20)
    first = arena.array((1000,), np.uint8)
    second = arena.array((100, 10), np.float32)
    view = second[3:5]  # a view keeps its array's region
    del second
    gc.collect()
    assert arena.free_bytes() == (1 << 20) - 1024 - 4032
    del view, first
    gc.collect()
    assert arena.free_bytes() == 1 << 20 and len(arena._free) == 1  # joined again
    whole = arena.array((1 << 20,), np.uint8)
    assert whole is not None and arena.array((1,), np.uint8) is None  # full: None


def test_frames_that_do_not_fit_the_arena_decode_in_threads(monkeypatch) -> None:
    monkeypatch.setenv(frame_processes.ARENA_ENV, "1")  # 1 MiB: 40 frames of 24x40 fit
    frame_processes.frame_pool()
    big = frame_processes.frames_array(400, LEAF, FrameBuffers())  # 1.15 MB
    assert frame_processes.frame_pool().arena.offset(big) is None
    assert np.array_equal(decode_into(BLOBS * 10, LEAF, big)[:40], decode_frames(BLOBS, LEAF))


def test_auto_uses_processes_only_for_large_frames_and_bad_settings_are_refused(
    monkeypatch,
) -> None:
    monkeypatch.setenv(frame_processes.PROCESSES_ENV, "auto")
    assert not frame_processes.wanted(24 * 40 * 3, 40)  # small frames: threads
    assert frame_processes.wanted(180 * 320 * 3, 64)
    assert not frame_processes.wanted(180 * 320 * 3, 4)  # too few frames
    monkeypatch.setenv(images.THREADS_ENV, "1")
    assert not frame_processes.wanted(180 * 320 * 3, 64)  # one core: nothing to gain
    monkeypatch.setenv(frame_processes.PROCESSES_ENV, "yes")
    with pytest.raises(ValueError, match=r"RLDS_HUB_DECODE_PROCESSES must be 1 .* or auto"):
        frame_processes.wanted(180 * 320 * 3, 64)
    monkeypatch.setenv(frame_processes.ARENA_ENV, "lots")
    with pytest.raises(ValueError, match="RLDS_HUB_DECODE_ARENA_MB must be a whole number"):
        frame_processes.arena_bytes()


def _child_decodes(queue) -> None:
    out = frame_processes.frames_array(len(BLOBS), LEAF, FrameBuffers())
    pool = frame_processes._pool
    queue.put((decode_into(BLOBS, LEAF, out).sum(), pool.pids if pool else None))


def test_forked_children_decode_with_their_own_pool_or_threads() -> None:
    """A daemonic child (a DataLoader worker) may not have children: it decodes in threads;
    another forked child starts its own workers. Neither waits on the parent's."""
    expected = decode_into(BLOBS, LEAF, _shared()).sum()
    parents = frame_processes.frame_pool().pids
    context = multiprocessing.get_context("fork")
    for daemon in (True, False):
        queue = context.Queue()
        child = context.Process(target=_child_decodes, args=(queue,), daemon=daemon)
        child.start()
        total, pids = queue.get(timeout=60)
        child.join(timeout=30)
        assert total == expected and child.exitcode == 0
        if daemon:
            assert pids is None
        else:
            assert pids and not set(pids) & set(parents)
