"""The camera workload (rlds_hub.testing.cameras): frames that look like camera images, the
same episodes in the PNG store (rlds_hub's writer) and the JPEG store (TFDS's builder)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from rlds_hub.format.images import encode_png
from rlds_hub.storage import iter_episodes, open_dataset
from rlds_hub.storage.episodes import dataset_layout
from rlds_hub.testing.cameras import (
    CAMERAS,
    CameraWorkload,
    camera_frames,
    episode_columns,
    write_camera_datasets,
)

SMALL = CameraWorkload(episodes=2, steps=6, height=36, width=64, seed=5)


def test_frames_look_like_a_moving_textured_noisy_camera() -> None:
    workload = CameraWorkload(episodes=1, steps=20)
    frames = camera_frames(workload, 0, 0)
    assert frames.shape == (20, 180, 320, 3) and frames.dtype == np.uint8
    as_float = frames.astype(np.float32)
    # textured: far from flat colours, in every frame
    assert as_float.std(axis=(1, 2)).min() > 15
    # moving: consecutive frames differ, by much less than two unrelated frames do
    step = np.abs(np.diff(as_float, axis=0)).mean(axis=(1, 2, 3))
    other = np.abs(as_float[0] - camera_frames(workload, 0, 1)[0].astype(np.float32)).mean()
    assert step.min() > 2 and step.max() < other
    # sensor noise: a frame's fine detail changes between steps even where the scene is still
    assert not np.array_equal(frames[0, :8, :8], frames[1, :8, :8])
    # sizes like a camera's: PNG keeps most of the raw bytes, JPEG q95 some tens of KB
    png = len(encode_png(frames[0]))
    assert 0.3 * frames[0].nbytes < png < frames[0].nbytes
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frames[0]).save(buffer, format="JPEG", quality=95)
    assert 8_000 < len(buffer.getvalue()) < 80_000


def test_episodes_are_deterministic_and_distinct() -> None:
    a, b = episode_columns(SMALL, 0), episode_columns(SMALL, 0)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    other = episode_columns(SMALL, 1)
    assert not np.array_equal(a["steps/observation/image"], other["steps/observation/image"])
    assert a["steps/observation/state"].shape == (6, 7)
    assert a["steps/action"].shape == (6, 7) and a["steps/action"].dtype == np.float32
    assert len(set(a["steps/language_instruction"])) == 1  # one instruction per episode
    assert a["steps/is_first"].tolist() == [True] + [False] * 5
    assert a["steps/is_last"].tolist() == [False] * 5 + [True]


def test_bad_workloads_are_refused() -> None:
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        CameraWorkload(episodes=0)
    with pytest.raises(ValueError, match="at least 16x16"):
        CameraWorkload(height=8)


@pytest.mark.slow
def test_png_and_jpeg_stores_hold_the_same_episodes(tmp_path) -> None:
    written = write_camera_datasets(tmp_path, SMALL, workers=1, shards=2)
    expected = {i: episode_columns(SMALL, i) for i in range(SMALL.episodes)}
    for store in (written.png, written.jpeg):
        dataset = open_dataset(store)
        assert dataset_layout(dataset) == "oxe"
        seen = set()
        for episode in iter_episodes(dataset, "train"):
            index = episode["__index__"]
            seen.add(index)
            steps, want = episode["steps"], expected[index]
            for name in CAMERAS:
                got = steps["observation"][name]
                frames = want[f"steps/observation/{name}"]
                if store == written.png:  # lossless
                    assert np.array_equal(got, frames)
                else:  # JPEG q95: close, not equal
                    error = np.abs(got.astype(np.int16) - frames).mean()
                    assert 0 < error < 8
            assert np.array_equal(steps["observation"]["state"], want["steps/observation/state"])
            assert np.array_equal(steps["action"], want["steps/action"])
            assert [bytes(s) for s in steps["language_instruction"]] == [
                s.encode() for s in want["steps/language_instruction"]
            ]
        assert seen == set(range(SMALL.episodes))
    assert written.png_frame_bytes > written.jpeg_frame_bytes > 0
    with pytest.raises(FileExistsError, match="new directory"):
        write_camera_datasets(tmp_path, SMALL, workers=1)
