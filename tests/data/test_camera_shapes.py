"""Camera frames of mixed sizes: reported when a loader is built (from frame headers, no
decoding), and a frame of another size later in an episode an error naming where it is."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from step_datasets import camera_dataset, stored_episodes

from rlds_hub import data
from rlds_hub.data.frame_shapes import FrameShapeError, frame_size
from rlds_hub.storage import open_dataset
from rlds_hub.storage.reader import EpisodeDecodeError, read_record

IMAGE = "steps/observation/image"  # JPEG, 8x8x3 in camera_dataset()
WRIST = "steps/observation/wrist_image"  # PNG, 4x4x3


def _encode(height: int, width: int, fmt: str, **options) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt, **options)
    return out.getvalue()


def _not_first_in_shard(path: str) -> int:
    """An episode with >= 2 steps that is not the first record of its shard (so a check of
    one record per shard would miss it)."""
    dataset = open_dataset(path)
    lengths = {e: len(ep["steps"]["is_first"]) for e, ep in stored_episodes(path).items()}
    return next(
        e for e in sorted(lengths) if read_record(dataset, "train", e).position and lengths[e] > 1
    )


def _resized(path: str, directory: Path, episode: int, steps: slice) -> str:
    """A copy of ``path`` whose episode ``episode`` has the ``steps`` frames of both cameras
    6 pixels high instead of 8 (JPEG) and 4 (PNG), its shard rewritten (valid CRCs)."""
    import tensorflow as tf

    copy = directory / "resized"
    shutil.copytree(path, copy)
    found = read_record(open_dataset(str(copy)), "train", episode)
    shard, position = found.shard, found.position
    records = [bytes(r.numpy()) for r in tf.data.TFRecordDataset(str(shard))]
    example = tf.train.Example.FromString(records[position])
    for key, fmt, width in ((IMAGE, "JPEG", 8), (WRIST, "PNG", 4)):
        values = example.features.feature[key].bytes_list.value
        for step in range(len(values))[steps]:
            values[step] = _encode(6, width, fmt)
    records[position] = example.SerializeToString()
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for record in records:
            writer.write(record)
    return str(copy)


@pytest.fixture(scope="module")
def oxe():
    return camera_dataset()


def test_frame_size_reads_png_and_jpeg_headers_only():
    assert frame_size(_encode(6, 10, "PNG")) == (6, 10)
    assert frame_size(_encode(6, 10, "JPEG")) == (6, 10)
    assert frame_size(_encode(7, 5, "JPEG", progressive=True)) == (7, 5)  # SOF2
    assert frame_size(memoryview(_encode(3, 9, "PNG"))) == (3, 9)
    assert frame_size(_encode(6, 10, "JPEG")[:20]) is None  # cut before the frame header
    assert frame_size(b"\xff\xd8\xff\xe0 not a JPEG") is None
    assert frame_size(b"GIF89a") is None


@pytest.mark.parametrize(
    "build",
    [
        lambda p: data.steps(p, batch_size=4),
        lambda p: data.steps(p, keys=["observation"], history=2),
        lambda p: data.transitions(p, batch_size=4),
        lambda p: data.windows(p, size=2, batch_size=4),
    ],
    ids=["steps", "steps_history", "transitions", "windows"],
)
def test_mismatched_camera_shapes_are_reported_when_the_loader_is_built(oxe, tmp_path, build):
    episode = _not_first_in_shard(oxe)  # every episode of a local shard is checked
    path = _resized(oxe, tmp_path, episode, slice(None))
    with pytest.raises(FrameShapeError) as error:
        build(path)  # built, not iterated: nothing decoded
    message = str(error.value)
    for part in (
        path,
        IMAGE,
        "(8, 8, 3)",
        "6x8 (height x width)",
        "8x8 (height x width)",
        f"episode {episode} (",
        "tfrecord-0000",
        WRIST,
        "(4, 4, 3)",
        "6x4",
        "episodes=",
    ):
        assert part in message, message


def test_fields_left_out_are_not_checked_and_one_shape_selected_opens(oxe, tmp_path):
    episode = _not_first_in_shard(oxe)
    path = _resized(oxe, tmp_path, episode, slice(None))
    others = [e for e in stored_episodes(oxe) if e != episode]
    found = {int(e) for batch in data.steps(path, episodes=others) for e in batch["episode_index"]}
    assert found == set(others)
    batches = list(data.steps(path, keys=["action", "reward"]))  # no camera read
    assert sum(len(b["action"]) for b in batches) == sum(
        len(ep["steps"]["is_first"]) for ep in stored_episodes(oxe).values()
    )


def test_a_frame_of_another_size_mid_episode_names_dataset_file_episode_step_and_field(
    oxe, tmp_path
):
    episode = _not_first_in_shard(oxe)  # its first frame is right, step 1 is 6x8
    path = _resized(oxe, tmp_path, episode, slice(1, 2))
    record = read_record(open_dataset(path), "train", episode)
    loader = data.steps(path, batch_size=4)  # the first frames agree: it opens
    with pytest.raises(EpisodeDecodeError) as error:
        list(loader)
    message = str(error.value)
    shard = Path(record.shard).name
    for part in (path, shard, f"record {record.position})", "step 1", IMAGE, "8x6"):
        assert part in message, message
    assert "the feature says (8, 8, 3)" in message


def test_the_torch_datasets_report_mismatched_shapes_when_built(oxe, tmp_path):
    pytest.importorskip("torch")
    from rlds_hub.data.torch import StepDataset, StepMapDataset

    episode = _not_first_in_shard(oxe)
    path = _resized(oxe, tmp_path, episode, slice(None))
    for dataset in (StepDataset, StepMapDataset):
        with pytest.raises(
            FrameShapeError, match=rf"6x8 \(height x width\) in episode {episode} \("
        ):
            dataset(path)


def test_the_check_decodes_no_frame(oxe, tmp_path, monkeypatch):
    import rlds_hub.format.decode as decode_module
    import rlds_hub.format.images as images

    def refuse(*_):
        raise AssertionError("a frame was decoded while building the loader")

    path = _resized(oxe, tmp_path, _not_first_in_shard(oxe), slice(None))
    monkeypatch.setattr(images, "decode_image", refuse)
    monkeypatch.setattr(decode_module, "decode_frames", refuse)
    data.steps(oxe)  # the clean dataset builds without decoding a frame
    with pytest.raises(FrameShapeError):
        data.steps(path)
