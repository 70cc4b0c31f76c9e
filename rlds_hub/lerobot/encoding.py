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


def decode_frames(
    path: str | os.PathLike, height: int, width: int, positions: Collection[int]
) -> tuple[int, np.ndarray]:
    """Decodes only the frames at ``positions`` (display order) of an MP4 file: ``(frames in
    the file, [k, H, W, 3] uint8 RGB in ascending position order)``. The file's packets are
    read without decoding (one per frame: the count) and only the keyframe-started groups
    holding a wanted frame are decoded (with LeRobot's 2-frame GOP, at most two frames per
    wanted one), so checking a few frames of a long video costs a few frames' decoding."""
    av = _av()
    wanted = sorted(set(positions))
    try:
        with av.open(os.fspath(path)) as container:
            stream = container.streams.video[0]
            index = [
                (packet.pts, packet.is_keyframe)
                for packet in container.demux(stream)
                if packet.pts is not None
            ]
        order = sorted(pts for pts, _ in index)  # display order
        if wanted and wanted[-1] >= len(order):
            raise EncodingError(f"{path}: frame {wanted[-1]} asked for, the file has {len(order)}")
        targets = {order[i]: i for i in wanted}
        groups, group = set(), -1
        for pts, key in index:
            group += 1 if key or group < 0 else 0
            if pts in targets:
                groups.add(group)
        found: dict[int, np.ndarray] = {}
        with av.open(os.fspath(path)) as container:
            stream = container.streams.video[0]
            context, group = stream.codec_context, -1
            for packet in container.demux(stream):
                if packet.pts is not None:
                    group += 1 if packet.is_keyframe or group < 0 else 0
                    if group not in groups:
                        continue
                for frame in context.decode(packet):  # the last, empty packet flushes
                    if frame.pts in targets:
                        found[targets[frame.pts]] = frame.to_ndarray(format="rgb24")
    except EncodingError:
        raise
    except Exception as error:
        raise EncodingError(f"decoding {path} failed: {error}") from error
    missing = [i for i in wanted if i not in found]
    if missing:
        raise EncodingError(f"{path}: frames {missing} did not decode")
    if not wanted:
        return len(order), np.zeros((0, height, width, 3), np.uint8)
    return len(order), np.stack([found[i] for i in wanted])


def psnr(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Per-frame PSNR in dB of ``[n, H, W, C]`` uint8 frames (inf where identical)."""
    error = (original.astype(np.int32) - decoded.astype(np.int32)) ** 2
    mse = error.reshape(len(original), -1).mean(axis=1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0**2 / mse)


def ssim(original: np.ndarray, decoded: np.ndarray, window: int = 7) -> np.ndarray:
    """Per-frame SSIM of ``[n, H, W, C]`` uint8 frames: the mean over channels of the
    structural similarity with a ``window`` x ``window`` uniform window (Wang et al. 2004's
    constants). Frame by frame, the five local means in one buffer filtered along the rows
    and then the columns (the values of a 2-d uniform filter; a frame's buffers stay in the
    CPU's cache)."""
    from scipy.ndimage import uniform_filter1d

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = np.empty(len(original), np.float64)
    for i, (a, b) in enumerate(zip(original, decoded, strict=True)):
        x, y = a.astype(np.float32), b.astype(np.float32)
        means = np.stack([x, y, x * x, y * y, x * y])
        uniform_filter1d(means, window, axis=1, output=means)
        uniform_filter1d(means, window, axis=2, output=means)
        mx, my, xx, yy, xy = means
        mxy, mx2, my2 = mx * my, mx * mx, my * my
        numerator = (2 * mxy + c1) * (2 * (xy - mxy) + c2)
        denominator = (mx2 + my2 + c1) * ((xx - mx2) + (yy - my2) + c2)
        out[i] = (numerator / denominator).mean(dtype=np.float64)
    return out
