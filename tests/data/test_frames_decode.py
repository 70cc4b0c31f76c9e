"""Camera frames decoded in parallel, in place (rlds_hub.format.images.decode_frames): the
same pixels as one-by-one decoding, errors naming the step, the thread count setting."""

from __future__ import annotations

import io

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from rlds_hub.format import images
from rlds_hub.format.images import ImageDecodeError, decode_frames, decode_image, encode_png
from rlds_hub.format.plan import Leaf, LeafKind
from rlds_hub.testing.cameras import CameraWorkload, camera_frames

FRAMES = camera_frames(CameraWorkload(episodes=1, steps=40, height=24, width=40), 0, 0)


def _leaf(encoding: str) -> Leaf:
    return Leaf(
        "steps/observation/image", LeafKind.IMAGE, np.dtype(np.uint8), (24, 40, 3), True, encoding
    )


def _jpeg(frame: np.ndarray) -> bytes:
    return simplejpeg.encode_jpeg(frame, quality=90, colorspace="RGB", colorsubsampling="420")


@pytest.fixture(params=["1", "3"])
def threads(request, monkeypatch) -> int:
    monkeypatch.setenv(images.THREADS_ENV, request.param)
    return int(request.param)


@pytest.mark.parametrize("encoding", ["jpeg", "png"])
def test_parallel_decoding_gives_the_pixels_of_one_by_one_decoding(threads, encoding) -> None:
    leaf = _leaf(encoding)
    encode = _jpeg if encoding == "jpeg" else encode_png
    blobs = [encode(frame) for frame in FRAMES]
    expected = np.stack([decode_image(blob, leaf) for blob in blobs])
    got = decode_frames([memoryview(b) for b in blobs], leaf)
    assert got.shape == (40, 24, 40, 3) and got.dtype == np.uint8
    assert np.array_equal(got, expected)
    if encoding == "png":
        assert np.array_equal(got, FRAMES)  # lossless


def test_a_jpeg_that_is_not_baseline_rgb_still_decodes(threads) -> None:
    """A grey JPEG in an RGB feature: not decoded in place, but decoded (as TFDS does)."""
    buffer = io.BytesIO()
    Image.fromarray(FRAMES[0, ..., 0]).save(buffer, format="JPEG")
    blobs = [_jpeg(f) for f in FRAMES[:9]] + [buffer.getvalue()]
    got = decode_frames(blobs, _leaf("jpeg"))
    assert np.array_equal(got[9], decode_image(buffer.getvalue(), _leaf("jpeg")))


@pytest.mark.parametrize("bad_step", [0, 17, 39])
def test_a_corrupt_frame_is_reported_with_its_step(threads, bad_step) -> None:
    blobs = [_jpeg(frame) for frame in FRAMES]
    blobs[bad_step] = b"\xff\xd8\xff\xe0 not a JPEG"
    with pytest.raises(ImageDecodeError, match=rf"^step {bad_step}: cannot decode an image"):
        decode_frames(blobs, _leaf("jpeg"))


def test_the_first_bad_step_is_named_when_several_are_bad(threads) -> None:
    blobs = [_jpeg(frame) for frame in FRAMES]
    blobs[30] = blobs[5] = b"junk"
    with pytest.raises(ImageDecodeError, match=r"^step 5: "):
        decode_frames(blobs, _leaf("jpeg"))


def test_a_frame_of_another_size_is_reported(threads) -> None:
    blobs = [_jpeg(frame) for frame in FRAMES]
    blobs[12] = _jpeg(np.zeros((16, 40, 3), np.uint8))
    with pytest.raises(ImageDecodeError, match=r"^step 12: an image frame is 40x16"):
        decode_frames(blobs, _leaf("jpeg"))


def test_no_frames_give_an_empty_array() -> None:
    assert decode_frames([], _leaf("png")).shape == (0, 24, 40, 3)


def test_the_thread_count_setting(monkeypatch) -> None:
    monkeypatch.setenv(images.THREADS_ENV, "5")
    assert images.decode_threads() == 5
    for bad in ("0", "many"):
        monkeypatch.setenv(images.THREADS_ENV, bad)
        with pytest.raises(ValueError, match="RLDS_HUB_DECODE_THREADS must be a whole number"):
            images.decode_threads()
    monkeypatch.delenv(images.THREADS_ENV)
    assert images.decode_threads() >= 1


def test_frames_are_decoded_on_several_threads(monkeypatch) -> None:
    import threading

    monkeypatch.setenv(images.THREADS_ENV, "4")
    seen = set()
    real = images._decode_range

    def spy(*args) -> None:
        seen.add(threading.get_ident())
        real(*args)

    monkeypatch.setattr(images, "_decode_range", spy)
    blobs = [_jpeg(frame) for frame in FRAMES]
    decode_frames(blobs, _leaf("jpeg"))
    assert threading.get_ident() not in seen and len(seen) >= 2
