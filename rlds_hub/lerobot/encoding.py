"""Camera frames to MP4 video as LeRobot stores them (``yuv420p``, a keyframe every 2 frames,
LeRobot's default quality), and the quality of what was encoded (PSNR, SSIM).

Encoding and decoding use PyAV (``av``, the ``lerobot`` extra; LeRobot's own encoder library):
``libsvtav1`` for ``av1`` (LeRobot's default codec: crf 30) and ``libx264`` for ``h264``
(crf 18), one encoder thread each (the export's workers are the parallelism); the
encoders' own presets (LeRobot sets none either). One encoder
writes one video file; episodes are appended one after another, each starting at the
timestamp of its first frame (``frames / fps``).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from rlds_hub.extras import require

ENCODERS: dict[str, tuple[str, dict[str, str]]] = {
    "av1": ("libsvtav1", {"crf": "30", "g": "2", "svtav1-params": "lp=1"}),
    "h264": ("libx264", {"crf": "18", "g": "2", "preset": "veryfast", "threads": "1"}),
}
PIX_FMT = "yuv420p"


class EncodingError(RuntimeError):
    """The codec refused the frames, or encoding or decoding failed (the message says why)."""


def _av() -> Any:
    return require("av", "lerobot", "video export and decoding")


def check_codec(codec: str) -> None:
    """Refuses a codec this PyAV build cannot encode (before anything is written)."""
    av = _av()
    name = ENCODERS[codec][0]
    try:
        av.codec.Codec(name, "w")
    except Exception as error:  # PyAV raises its own UnknownCodecError (a ValueError)
        raise EncodingError(
            f"this PyAV {av.__version__} has no {name} encoder for --video-codec {codec}: "
            "use another codec, or none"
        ) from error


def check_frame_size(codec: str, height: int, width: int, name: str) -> None:
    """Refuses frame sizes the codec cannot encode in ``yuv420p``."""
    if height % 2 or width % 2:
        raise EncodingError(
            f"{name}: {height} x {width} frames cannot be {codec} video in {PIX_FMT} (both sides "
            "must be even); export with --video-codec none to store them losslessly"
        )
    if codec == "av1" and min(height, width) < 64:
        raise EncodingError(
            f"{name}: {height} x {width} frames are too small for the AV1 encoder (64 pixels "
            "per side at least); use --video-codec h264 or none"
        )


class VideoEncoder:
    """Writes ``H x W x 3`` uint8 frames to ``path`` as an MP4 video at ``fps``."""

    def __init__(self, path: str | os.PathLike, codec: str, fps: int, height: int, width: int):
        if codec not in ENCODERS:
            raise ValueError(f"unknown video codec {codec!r}; choose one of {sorted(ENCODERS)}")
        av = _av()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shape = (height, width, 3)
        self.frames = 0
        name, options = ENCODERS[codec]
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1's banner off stderr (errors only)
        self._container = av.open(os.fspath(self.path), "w")
        self._stream = self._container.add_stream(name, rate=fps, options=dict(options))
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = PIX_FMT
        self._frame_class = av.VideoFrame

    def write(self, frames: np.ndarray) -> None:
        """Appends ``[n, H, W, 3]`` frames."""
        frames = np.ascontiguousarray(frames, np.uint8)
        if frames.shape[1:] != self.shape:
            raise EncodingError(f"{self.path}: frames {frames.shape[1:]}, expected {self.shape}")
        try:
            for pixels in frames:
                frame = self._frame_class.from_ndarray(pixels, format="rgb24")
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
        except Exception as error:
            raise EncodingError(f"encoding {self.path} failed: {error}") from error
        self.frames += len(frames)

    def close(self) -> None:
        """Flushes the encoder and finishes the file."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except Exception as error:
            raise EncodingError(f"finishing {self.path} failed: {error}") from error

    def abort(self) -> None:
        """Closes the file and removes it."""
        try:
            self._container.close()
        finally:
            self.path.unlink(missing_ok=True)


def decode_video(
    path: str | os.PathLike, height: int, width: int, keep: Collection[int] | None = None
) -> tuple[int, np.ndarray]:
    """Decodes an MP4 file: ``(frames in the file, [k, H, W, 3] uint8 RGB)`` of the frames
    ``keep`` names (all by default); only those are converted and held."""
    av = _av()
    kept, count = [], 0
    try:
        with av.open(os.fspath(path)) as container:
            for frame in container.decode(video=0):
                if keep is None or count in keep:
                    kept.append(frame.to_ndarray(format="rgb24"))
                count += 1
    except Exception as error:
        raise EncodingError(f"decoding {path} failed: {error}") from error
    if not kept:
        return count, np.zeros((0, height, width, 3), np.uint8)
    return count, np.stack(kept)


def psnr(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Per-frame PSNR in dB of ``[n, H, W, C]`` uint8 frames (inf where identical)."""
    error = (original.astype(np.int32) - decoded.astype(np.int32)) ** 2
    mse = error.reshape(len(original), -1).mean(axis=1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0**2 / mse)


def ssim(original: np.ndarray, decoded: np.ndarray, window: int = 7) -> np.ndarray:
    """Per-frame SSIM of ``[n, H, W, C]`` uint8 frames: the mean over channels of the
    structural similarity with a ``window`` x ``window`` uniform window (Wang et al. 2004's
    constants)."""
    from scipy.ndimage import uniform_filter

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x = original.astype(np.float32)
    y = decoded.astype(np.float32)
    size = (1, window, window, 1)
    mx, my = uniform_filter(x, size), uniform_filter(y, size)
    vx = uniform_filter(x * x, size) - mx * mx
    vy = uniform_filter(y * y, size) - my * my
    cxy = uniform_filter(x * y, size) - mx * my
    value = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return value.reshape(len(original), -1).mean(axis=1, dtype=np.float64)
