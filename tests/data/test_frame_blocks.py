"""rlds_hub.data.frame_blocks and images.FrameBuffers: camera frames decoded where the items
need them (single steps: only a block's frames, into reused memory), pixel for pixel as the
eager decoder gives them, and errors that still name the dataset, file, episode, step and
field."""

from __future__ import annotations

import gc
import multiprocessing

import numpy as np
import pytest
from step_datasets import camera_dataset, corrupt_frame

from rlds_hub import data
from rlds_hub.data import frame_blocks
from rlds_hub.format.decode import EpisodeDecoder
from rlds_hub.format.images import THREADS_ENV, FrameBuffers, decode_frames, encode_png
from rlds_hub.format.plan import Leaf, LeafKind
from rlds_hub.storage import open_dataset
from rlds_hub.storage.query import select
from rlds_hub.storage.reader import (
    EpisodeDecodeError,
    EpisodeRecord,
    decode_records,
    iter_records,
)
from rlds_hub.testing.cameras import CameraWorkload, write_camera_datasets

FRAMES = ("steps/observation/image", "steps/observation/wrist_image")


@pytest.fixture(scope="module")
def oxe():
    return camera_dataset()


def _address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def test_buffers_are_reused_only_once_every_view_is_gone():
    buffers = FrameBuffers()
    first = buffers.array((4, 2, 3), np.uint8)
    where = _address(first)
    view = first[1:].reshape(-1)  # a batch cut out of a block
    del first
    gc.collect()
    assert buffers.idle_bytes() == 0  # the view still shows the memory
    other = buffers.array((4, 2, 3), np.uint8)
    assert _address(other) != where
    del view
    assert buffers.idle_bytes() == 24
    again = buffers.array((4, 2, 3), np.uint8)
    assert _address(again) == where and buffers.idle_bytes() == 0
    assert again.shape == (4, 2, 3) and again.dtype == np.uint8


def test_idle_buffers_are_bounded_in_bytes_whatever_their_sizes(monkeypatch):
    # variable-length episodes make chunks of many sizes: idle memory must not grow with them
    slack = 64  # each buffer's alignment slack counts against the budget
    buffers = FrameBuffers(max_idle_bytes=2 * (1000 + slack))
    arrays = [buffers.array((1000 * 2**i,), np.uint8) for i in range(5)]  # 5 sizes
    del arrays
    assert buffers.idle_bytes() == 1000  # the larger ones do not fit the budget
    same = [buffers.array((1000,), np.uint8) for _ in range(5)]
    del same
    assert buffers.idle_bytes() == 2 * 1000  # the oldest dropped first
    monkeypatch.setenv("RLDS_HUB_FRAME_BUFFERS_MB", "lots")
    with pytest.raises(ValueError, match="RLDS_HUB_FRAME_BUFFERS_MB"):
        FrameBuffers()


def test_a_slightly_smaller_request_reuses_a_larger_idle_buffer():
    buffers = FrameBuffers(max_idle_bytes=1 << 20)
    first = buffers.array((1000,), np.uint8)
    where = _address(first)
    del first
    near = buffers.array((900,), np.uint8)  # within a quarter: the same memory
    assert _address(near) == where and near.shape == (900,)
    del near
    small = buffers.array((500,), np.uint8)  # far smaller: new memory, the big one stays idle
    assert _address(small) != where and buffers.idle_bytes() == 1000


def test_single_steps_decode_only_the_frames_they_gather(oxe, monkeypatch):
    selection = select(open_dataset(oxe), "train")
    records = list(iter_records(selection))
    plan = selection.dataset.plan
    eager = decode_records(EpisodeDecoder(plan), records)
    chunks = frame_blocks.FrameChunks(plan, oxe)
    decoded_frames = []
    decode = frame_blocks.decode_into

    def counting(blobs, leaf, out):
        decoded_frames.append(len(blobs))
        return decode(blobs, leaf, out)

    monkeypatch.setattr(frame_blocks, "decode_into", counting)
    lazy = chunks.decode(records, keep_encoded=True)
    assert decoded_frames == []  # nothing decoded with the chunk
    index = np.array([5, 0, 17, 3])
    for key in FRAMES:
        rows = chunks.rows(lazy[key], index)
        assert len(rows) == 4
        assert np.array_equal(rows.gather(1, 3), eager[key][index[1:3]])
    assert decoded_frames == [2, 2]  # only the block's frames
    whole = chunks.decode(records, keep_encoded=False)
    for key in FRAMES:  # decoded once, into one array
        assert np.array_equal(whole[key], eager[key])
        rows = chunks.rows(whole[key], np.array([[0, 1], [4, 4]]))
        assert np.array_equal(rows.gather(), eager[key][[[0, 1], [4, 4]]])
    for key, value in eager.items():  # every other field as the eager decoder gives it
        if key not in FRAMES:
            assert np.array_equal(whole[key], value), key


@pytest.mark.parametrize(
    "make",
    [
        lambda path: data.steps(path, batch_size=4, history=2),
        lambda path: data.windows(path, size=3, batch_size=4, keys=["observation"]),
    ],
    ids=["steps with history", "windows"],
)
def test_a_corrupt_frame_decoded_per_chunk_names_where_it_is(oxe, tmp_path, make):
    path, record = corrupt_frame(oxe, tmp_path, step=1)
    with pytest.raises(EpisodeDecodeError) as error:
        list(make(path))
    message = str(error.value)
    for part in (path, "tfrecord-00000", f"record {record})", "step 1", "steps/observation/image"):
        assert part in message, message
    assert message.count(path) == 1 and "cannot decode an image frame" in message


def test_a_frame_error_names_the_episode_and_step_of_its_chunk_position(oxe):
    records = [
        EpisodeRecord(index=10 + i, shard=f"/d/x.tfrecord-0000{i}", position=i, data=b"")
        for i in range(4)
    ]
    chunk = frame_blocks.ChunkFrames("/d", records, np.array([0, 3, 3, 5]))  # 2nd is empty
    leaf = open_dataset(oxe).plan.restrict([FRAMES[0]]).leaves[0]
    error = chunk.error(leaf, 4, "broken", named=True)
    assert isinstance(error, EpisodeDecodeError)
    assert str(error) == (
        "/d: episode 12 (x.tfrecord-00002, record 2) does not decode: "
        "steps/observation/image: step 1: broken"
    )
    assert str(chunk.error(leaf, 5, "broken", named=False)).startswith("episode 13 (")


def test_buffers_are_aligned_for_xla():
    """64-byte aligned memory: JAX on the CPU uses it instead of copying each batch."""
    buffers = FrameBuffers()
    for shape in [(3, 5, 7, 3), (1,), (0, 4)]:
        assert buffers.array(shape, np.uint8).ctypes.data % 64 == 0
    assert buffers.array((3, 5), np.float32).ctypes.data % 64 == 0


@pytest.mark.parametrize("history", [0, 1])
def test_kept_jax_batches_keep_their_frames_while_memory_is_reused(tmp_path, history):
    """JAX on the CPU uses the aligned batches' memory uncopied: a batch still held must keep
    it from being handed out again."""
    pytest.importorskip("jax")
    workload = CameraWorkload(episodes=3, steps=8, height=40, width=40)  # rows of 4.8 KB
    path = write_camera_datasets(tmp_path, workload, jpeg=False, workers=1).png
    loader = data.steps(
        path,
        batch_size=2,
        history=history,
        shuffle_buffer=1,
        episodes_per_chunk=1,
        keys=["observation"],
    )
    kept, copies = [], []
    for batch in loader.as_jax_iterator():
        kept.append(batch["observation"]["image"])
        copies.append(np.array(batch["observation"]["image"]))
        del batch
        gc.collect()
    assert len(kept) == 12
    for frames, copy in zip(kept, copies, strict=True):
        assert np.array_equal(np.asarray(frames), copy)


def _decoded_count(blobs: list[bytes]) -> int:
    return len(decode_frames(blobs, _LEAF))


_LEAF = Leaf("steps/image", LeafKind.IMAGE, np.dtype(np.uint8), (8, 8, 3), in_steps=True)


def test_a_forked_worker_decodes_with_its_own_threads(monkeypatch):
    """A DataLoader worker forked after the parent decoded has none of the parent's pool
    threads: it must not wait on them forever."""
    monkeypatch.setenv(THREADS_ENV, "2")
    rng = np.random.default_rng(0)
    blobs = [encode_png(rng.integers(0, 255, (8, 8, 3), np.uint8)) for _ in range(16)]
    assert _decoded_count(blobs) == 16  # the parent's pool threads exist now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_decoded_count, (blobs,)).get(timeout=30) == 16
