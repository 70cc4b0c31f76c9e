"""Image observations as pictures: one frame as PNG, an episode's frames as an animation
(APNG and WebP lossless, GIF with a 256-colour palette per frame) or a filmstrip (a PNG
grid of frames)."""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

from rlds_hub.format.images import encode_png

ANIMATION_FORMATS = ("apng", "gif", "webp")
MEDIA_TYPES = {"apng": "image/apng", "gif": "image/gif", "webp": "image/webp", "png": "image/png"}
MAX_PIXELS = 64 * 2**20  # pixels in one animation or filmstrip
# Frames per second of an animation: at least one frame every 10 s (every format's frame
# duration field holds that: APNG's ends at 65.5 s, GIF's at 655 s), at most 100.
MIN_FPS = 0.1
MAX_FPS = 100.0


class MediaError(ValueError):
    """A media request the client got wrong (``status``: the HTTP status to answer)."""

    status = 413
    code = "too_large"


class EncodeError(MediaError):
    """The image encoder refused the frames or options."""

    status = 422
    code = "cannot_encode"


def frame_png(frame: np.ndarray) -> bytes:
    """One ``H x W x C`` uint8 frame (uint16 frames scaled to 8 bits) as PNG."""
    return encode_png(_as_uint8(frame))


def _as_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint16:
        return (frame >> 8).astype(np.uint8)
    return frame


def _image(frame: np.ndarray) -> Image.Image:
    frame = _as_uint8(frame)
    if frame.ndim == 3 and frame.shape[-1] == 1:
        frame = frame[..., 0]
    return Image.fromarray(np.ascontiguousarray(frame))


def check_size(frames: int, height: int, width: int) -> None:
    if frames * height * width > MAX_PIXELS:
        raise MediaError(
            f"{frames} frames of {width}x{height} exceed {MAX_PIXELS:,} pixels: choose a "
            "shorter range (start/stop) or a larger every="
        )


def animation(frames: np.ndarray, fps: float, image_format: str) -> bytes:
    """``[T, H, W, C]`` frames as an endlessly looping animation."""
    if image_format not in ANIMATION_FORMATS:
        raise EncodeError(f"format must be one of {', '.join(ANIMATION_FORMATS)}")
    check_size(len(frames), frames.shape[1], frames.shape[2])
    images = [_image(f) for f in frames]
    duration = max(round(1000 / fps), 10) if fps > 0 else 0
    buffer = io.BytesIO()
    options = {"save_all": True, "append_images": images[1:], "duration": duration, "loop": 0}
    try:
        if not MIN_FPS <= fps <= MAX_FPS:
            raise ValueError(f"fps={fps:g} is outside {MIN_FPS:g}..{MAX_FPS:g}")
        if image_format == "apng":
            images[0].save(buffer, format="PNG", compress_level=1, **options)
        elif image_format == "webp":
            images[0].save(buffer, format="WEBP", lossless=True, quality=50, method=0, **options)
        else:
            images[0].save(buffer, format="GIF", **options)
    except (ValueError, OverflowError, RuntimeError, OSError, struct.error) as e:
        raise EncodeError(f"the {image_format} encoder refused these frames: {e}") from e
    return buffer.getvalue()


def filmstrip(frames: np.ndarray, columns: int) -> bytes:
    """``[T, H, W, C]`` frames as one PNG, ``columns`` frames per row, row by row."""
    count, height, width = frames.shape[:3]
    check_size(count, height, width)
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    channels = frames.shape[3] if frames.ndim == 4 else 1
    sheet = np.zeros((rows * height, columns * width, channels), dtype=np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, columns)
        sheet[r * height : (r + 1) * height, c * width : (c + 1) * width] = _as_uint8(
            frame.reshape(height, width, channels)
        )
    return encode_png(sheet)
