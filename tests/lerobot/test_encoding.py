"""The export's video quality check: decoding only the checked frames of an MP4 gives the
pixels a full decode gives, and the frame-by-frame SSIM is the 2-d uniform-window SSIM."""

from __future__ import annotations

import numpy as np
import pytest

from rlds_hub.lerobot import encoding

pytest.importorskip("av")
HEIGHT, WIDTH = 64, 96


def _frames(n: int, seed: int) -> np.ndarray:
    """A moving gradient with noise (the encoder has real work, frames differ)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:HEIGHT, :WIDTH]
    out = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for i in range(n):
        out[i, ..., 0] = (x * 2 + i * 5) % 256
        out[i, ..., 1] = (y * 3 + i * 7) % 256
        out[i, ..., 2] = rng.integers(0, 256, (HEIGHT, WIDTH))
    return out


def _all_frames(path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.mark.parametrize("codec", ["av1", "h264"])
def test_decoding_the_checked_frames_gives_a_full_decodes_pixels(tmp_path, codec):
    path = tmp_path / f"{codec}.mp4"
    encoder = encoding.VideoEncoder(path, codec, 10, HEIGHT, WIDTH)
    for episode in range(3):  # episodes appended one after another, as the export does
        encoder.write(_frames(7, episode))
    encoder.close()
    everything = _all_frames(path)
    assert len(everything) == 21
    for wanted in ([0], [1], [3, 4, 5], [0, 6, 7, 13, 20], list(range(21)), []):
        count, frames = encoding.decode_frames(path, HEIGHT, WIDTH, set(wanted))
        assert count == 21
        assert frames.shape == (len(wanted), HEIGHT, WIDTH, 3)
        np.testing.assert_array_equal(frames, everything[wanted])


def test_asking_for_a_frame_past_the_end_is_an_error(tmp_path):
    path = tmp_path / "short.mp4"
    encoder = encoding.VideoEncoder(path, "h264", 10, HEIGHT, WIDTH)
    encoder.write(_frames(4, 0))
    encoder.close()
    with pytest.raises(encoding.EncodingError, match="frame 4 asked for, the file has 4"):
        encoding.decode_frames(path, HEIGHT, WIDTH, [1, 4])


def test_ssim_is_the_uniform_window_ssim_averaged_over_channels():
    from scipy.ndimage import uniform_filter

    original = _frames(3, 1)
    rng = np.random.default_rng(2)
    noisy = np.clip(original + rng.integers(-20, 21, original.shape), 0, 255).astype(np.uint8)
    # Wang et al.'s SSIM map with a 7 x 7 uniform window, in float64, frame by frame
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    expected = []
    for a, b in zip(original, noisy, strict=True):
        x, y = a.astype(np.float64), b.astype(np.float64)
        mean = lambda v: uniform_filter(v, (7, 7, 1))  # noqa: E731
        mx, my = mean(x), mean(y)
        vx, vy, cxy = mean(x * x) - mx**2, mean(y * y) - my**2, mean(x * y) - mx * my
        value = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        expected.append(value.mean())
    got = encoding.ssim(original, noisy)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert 0.2 < got.min() < got.max() < 0.99  # noise lowers it, not to zero
    np.testing.assert_allclose(encoding.ssim(original, original), 1.0, rtol=1e-6)
