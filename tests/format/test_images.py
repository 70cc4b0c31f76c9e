"""Image frames decode pixel for pixel as TFDS (TensorFlow) decodes them: JPEG with every
chroma subsampling and channel count, PNG of every mode."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from rlds_hub.format.images import ImageDecodeError, decode_image
from rlds_hub.format.plan import Leaf


def _frame(shape, seed):
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    smooth = (np.add.outer(np.arange(h), np.arange(w)) * 3)[..., None] % 256
    noise = rng.integers(0, 50, (h, w, shape[2] if len(shape) == 3 else 1))
    return ((smooth + noise) % 256).astype(np.uint8)


def _leaf(shape):
    return Leaf("steps/image", "image", np.dtype(np.uint8), shape, True)


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:2:2", "4:4:4"])
@pytest.mark.parametrize("size", [(48, 64), (33, 51)])
@pytest.mark.parametrize("channels", [3, 1])
def test_jpeg_decodes_exactly_as_tensorflow(subsampling, size, channels):
    frame = _frame((*size, 3), seed=size[0])
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=80, subsampling=subsampling)
    blob = buffer.getvalue()
    expected = tf.io.decode_image(blob, channels=channels, expand_animations=False).numpy()
    ours = decode_image(blob, _leaf((*size, channels)))
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    assert np.array_equal(ours, expected), f"{(ours != expected).mean():.1%} pixels differ"


def test_grayscale_jpeg_to_rgb_as_tensorflow():
    frame = _frame((40, 40, 1), seed=1)[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(frame, mode="L").save(buffer, format="JPEG", quality=90)
    expected = tf.io.decode_image(buffer.getvalue(), channels=3).numpy()
    assert np.array_equal(decode_image(buffer.getvalue(), _leaf((40, 40, 3))), expected)


@pytest.mark.parametrize(("mode", "channels"), [("L", 1), ("RGB", 3), ("RGBA", 4)])
def test_png_decodes_exactly_as_tensorflow(mode, channels):
    frame = _frame((21, 34, channels), seed=channels)
    buffer = io.BytesIO()
    Image.fromarray(frame[..., 0] if channels == 1 else frame, mode=mode).save(buffer, format="PNG")
    expected = tf.io.decode_image(buffer.getvalue(), channels=channels).numpy()
    assert np.array_equal(decode_image(buffer.getvalue(), _leaf((21, 34, channels))), expected)


def test_four_channel_jpeg_is_refused_like_tensorflow():
    buffer = io.BytesIO()
    Image.fromarray(_frame((8, 8, 3), 0)).save(buffer, format="JPEG")
    with pytest.raises(tf.errors.InvalidArgumentError, match="JPEG does not support 4"):
        tf.io.decode_image(buffer.getvalue(), channels=4)
    with pytest.raises(ImageDecodeError, match="cannot be decoded to 4 channels"):
        decode_image(buffer.getvalue(), _leaf((8, 8, 4)))


def test_wrong_size_and_garbage_are_clear_errors():
    buffer = io.BytesIO()
    Image.fromarray(_frame((8, 8, 3), 0)).save(buffer, format="PNG")
    with pytest.raises(ImageDecodeError, match=r"8x8 with 3 channel.*says \(16, 16, 3\)"):
        decode_image(buffer.getvalue(), _leaf((16, 16, 3)))
    with pytest.raises(ImageDecodeError, match="cannot decode an image frame"):
        decode_image(b"\xff\xd8 not really a jpeg", _leaf((8, 8, 3)))
