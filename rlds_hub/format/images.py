"""Encoded image frames (PNG, JPEG) to arrays, pixel for pixel as TFDS decodes them.

TFDS decodes ``Image`` features with TensorFlow's ``decode_image``, whose JPEG path uses
libjpeg-turbo with the *fast* integer IDCT (``JDCT_IFAST``) and fancy upsampling. PIL
decodes with the accurate IDCT, which differs on most pixels by a few levels. JPEG frames
are therefore decoded with ``simplejpeg`` (libjpeg-turbo) set to the same options as
TensorFlow, which gives identical pixels (``tests/format/test_images.py`` compares every pixel with
TensorFlow's decoder). PNG is lossless, and PIL decodes it identically.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rlds_hub.format.plan import Leaf

_PNG_MAGIC = b"\x89PNG"
_JPEG_MAGIC = b"\xff\xd8"
_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


class ImageDecodeError(ValueError):
    """A frame that is not a decodable image of the feature's shape."""


def image_format(blob: bytes) -> str:
    """ "png", "jpeg" or "other" from the first bytes of an encoded frame."""
    if blob[:4] == _PNG_MAGIC:
        return "png"
    if blob[:2] == _JPEG_MAGIC:
        return "jpeg"
    return "other"


def decode_image(blob: bytes, leaf: Leaf) -> np.ndarray:
    """One encoded frame as an array of ``leaf.shape`` and ``leaf.dtype``.

    Raises:
      ImageDecodeError: undecodable bytes, or a frame of another size.
    """
    channels = leaf.shape[-1] if len(leaf.shape) == 3 else 1
    try:
        if image_format(blob) == "jpeg" and leaf.dtype == np.uint8:
            frame = _decode_jpeg(blob, channels)
        else:
            frame = _decode_with_pil(blob, channels, leaf.dtype)
    except ImageDecodeError:
        raise
    except Exception as e:  # PIL and libjpeg raise many types for broken data
        raise ImageDecodeError(f"cannot decode an image frame ({type(e).__name__}: {e})") from e
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.shape != tuple(leaf.shape):
        if len(leaf.shape) == 2 and frame.shape == (*leaf.shape, 1):
            return frame[..., 0]
        raise ImageDecodeError(
            f"an image frame is {frame.shape[1]}x{frame.shape[0]} with {frame.shape[2]} "
            f"channel(s); the feature says {tuple(leaf.shape)}"
        )
    return frame


def _decode_jpeg(blob: bytes, channels: int) -> np.ndarray:
    import simplejpeg

    if channels == 1:
        return simplejpeg.decode_jpeg(blob, colorspace="GRAY", fastdct=True, fastupsample=False)
    if channels != 3:
        raise ImageDecodeError(
            f"a JPEG frame cannot be decoded to {channels} channels (JPEG has no alpha; "
            "TFDS refuses it too)"
        )
    return simplejpeg.decode_jpeg(blob, colorspace="RGB", fastdct=True, fastupsample=False)


def _decode_with_pil(blob: bytes, channels: int, dtype: np.dtype) -> np.ndarray:
    from PIL import Image

    image = Image.open(io.BytesIO(blob))
    if dtype == np.uint16:
        return np.asarray(image, dtype=np.uint16)
    mode = _PIL_MODES.get(channels)
    if mode is None:
        raise ImageDecodeError(f"images with {channels} channels are not supported")
    if image.mode != mode:
        image = image.convert(mode)
    return np.asarray(image, dtype=np.uint8)


def encode_png(frame: np.ndarray, compress_level: int = 1) -> bytes:
    """Lossless PNG of one ``H x W x C`` uint8 frame (C in 1, 3, 4)."""
    from PIL import Image

    if frame.ndim == 3 and frame.shape[-1] == 1:
        frame = frame[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(
        buffer, format="PNG", compress_level=compress_level
    )
    return buffer.getvalue()
