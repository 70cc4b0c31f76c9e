"""Camera frames to MP4 video as LeRobot stores them (``yuv420p``, a keyframe every 2 frames,
LeRobot's default quality), and the quality of what was encoded (PSNR, SSIM).

Encoding runs FFmpeg (Debian's ``ffmpeg``, or the one ``RLDS_HUB_FFMPEG`` names) as a
subprocess fed raw RGB frames: ``libsvtav1`` for ``av1`` (LeRobot's default codec) and
``libx264`` for ``h264``. One encoder writes one video file; episodes are appended one after
another and each starts at the timestamp of its first frame (``frames / fps``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Collection
from pathlib import Path

import numpy as np

ENCODERS = {
    "av1": ["-c:v", "libsvtav1", "-crf", "30", "-g", "2", "-preset", "10"],
    "h264": ["-c:v", "libx264", "-crf", "18", "-g", "2", "-preset", "veryfast"],
}
PIX_FMT = "yuv420p"
_RAW_RGB = ("-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")


class EncodingError(RuntimeError):
    """FFmpeg is missing, refused the frames, or failed (its message is included)."""


def ffmpeg() -> str:
    """The FFmpeg executable."""
    found = os.environ.get("RLDS_HUB_FFMPEG") or shutil.which("ffmpeg")
    if not found:
        raise EncodingError(
            "video export needs FFmpeg: install Debian's ffmpeg package (scripts/system_deps.sh) "
            "or set RLDS_HUB_FFMPEG, or export with --video-codec none"
        )
    return found


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
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shape = (height, width, 3)
        self.frames = 0
        self.fps = fps
        command = [
            ffmpeg(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-r",
            str(fps),
            "-i",
            "pipe:0",
            *ENCODERS[codec],
            "-pix_fmt",
            PIX_FMT,
            "-threads",
            "1",
            "-an",
            str(self.path),
        ]
        if codec == "av1":
            command[command.index("-threads") : command.index("-threads") + 2] = [
                "-svtav1-params",
                "lp=1",
            ]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
        )

    def write(self, frames: np.ndarray) -> None:
        """Appends ``[n, H, W, 3]`` frames."""
        frames = np.ascontiguousarray(frames, np.uint8)
        if frames.shape[1:] != self.shape:
            raise EncodingError(f"{self.path}: frames {frames.shape[1:]}, expected {self.shape}")
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(frames.tobytes())
        except BrokenPipeError:
            self._fail()
        self.frames += len(frames)

    def close(self) -> None:
        """Finishes the file; raises :class:`EncodingError` if FFmpeg failed."""
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        if self._process.wait() != 0:
            self._fail()

    def abort(self) -> None:
        """Stops FFmpeg and removes the partial file."""
        self._process.kill()
        self._process.wait()
        self.path.unlink(missing_ok=True)

    def _fail(self) -> None:
        self._process.kill()
        assert self._process.stderr is not None
        message = self._process.stderr.read().decode(errors="replace").strip()
        self._process.wait()
        raise EncodingError(f"FFmpeg failed writing {self.path}: {message}")


def decode_video(
    path: str | os.PathLike, height: int, width: int, keep: Collection[int] | None = None
) -> tuple[int, np.ndarray]:
    """Decodes an MP4 file with FFmpeg: ``(frames in the file, [k, H, W, 3] uint8 RGB)`` of
    the frames ``keep`` names (all by default), streamed so only those are held."""
    command = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", os.fspath(path), *_RAW_RGB]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    size = height * width * 3
    kept, count = [], 0
    while True:
        frame = process.stdout.read(size)
        if len(frame) < size:
            break
        if keep is None or count in keep:
            kept.append(np.frombuffer(frame, np.uint8).reshape(height, width, 3))
        count += 1
    message = process.stderr.read().decode(errors="replace").strip()
    if process.wait() != 0:
        raise EncodingError(f"FFmpeg could not decode {path}: {message}")
    return count, np.stack(kept) if kept else np.zeros((0, height, width, 3), np.uint8)


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
