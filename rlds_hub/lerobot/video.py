"""Frames of a LeRobot video file, decoded as LeRobot's own reader decodes them.

LeRobot 0.4 reads a frame at timestamp ``t`` of an episode starting at ``from_timestamp`` in
its MP4 file by decoding frame ``round((from_timestamp + t) * average_fps)`` with torchcodec
(FFmpeg's decoders, converted to RGB24 by FFmpeg) and refuses it when that frame's
presentation time is ``tolerance_s`` or more away from the query (compared in float32). This
module does the same with the system's FFmpeg (the ``ffmpeg``/``ffprobe`` programs, the same
libraries torchcodec loads), so the pixels are equal to ``LeRobotDataset[i]``'s (times 255):
the tests compare them value by value. ``probe`` reads a file's stream facts and
presentation times from its packets (no decoding); ``decode`` decodes a run of frames,
seeking to the first one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from rlds_hub.lerobot.reading import LeRobotFormatError

#: LeRobotDataset's default tolerance between a query timestamp and the frame's (seconds).
TOLERANCE_S = 1e-4


@dataclasses.dataclass(frozen=True)
class VideoStream:
    """The video stream of one MP4 file: size, codec, rate and every frame's time (s)."""

    path: str
    codec: str
    pix_fmt: str
    width: int
    height: int
    average_fps: float
    pts: np.ndarray  # float64 seconds, presentation order

    @property
    def num_frames(self) -> int:
        return len(self.pts)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LeRobotFormatError(
            f"{name} is not installed: reading LeRobot videos needs FFmpeg's programs "
            "(Debian: apt-get install ffmpeg; scripts/system_deps.sh installs it)"
        )
    return path


def _run(command: list[str], what: str) -> bytes:
    done = subprocess.run(command, capture_output=True, check=False)
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip()[-800:]
        raise LeRobotFormatError(f"{what}: FFmpeg failed ({message})")
    return done.stdout


def probe(path: str) -> VideoStream:
    """The first video stream of ``path``: codec, pixel format, size, average frame rate
    (the header's, as torchcodec's approximate mode uses) and its frames' times."""
    if not os.path.isfile(path):
        raise LeRobotFormatError(f"{path} is missing")
    command = [
        _tool("ffprobe"),
        *("-v", "error", "-select_streams", "v:0", "-of", "json"),
        *("-show_entries", "stream=codec_name,pix_fmt,width,height,avg_frame_rate,time_base"),
        *("-show_entries", "packet=pts"),
        path,
    ]
    found = json.loads(_run(command, path))
    streams = found.get("streams") or []
    if not streams:
        raise LeRobotFormatError(f"{path} holds no video stream")
    stream = streams[0]
    base = Fraction(stream["time_base"])
    rate = Fraction(stream.get("avg_frame_rate") or "0/1")
    if rate <= 0:
        raise LeRobotFormatError(f"{path}: the video stream has no average frame rate")
    ticks = sorted(int(p["pts"]) for p in found.get("packets", []) if "pts" in p)
    seconds = float(base.numerator) / float(base.denominator)
    return VideoStream(
        path=path,
        codec=str(stream.get("codec_name")),
        pix_fmt=str(stream.get("pix_fmt")),
        width=int(stream["width"]),
        height=int(stream["height"]),
        average_fps=float(rate.numerator) / float(rate.denominator),
        pts=np.asarray(ticks, dtype=np.float64) * seconds,
    )


def frame_indices(
    stream: VideoStream,
    timestamps: Sequence[float],
    where: str,
    tolerance_s: float = TOLERANCE_S,
) -> np.ndarray:
    """The frames LeRobot decodes for the (file-relative) ``timestamps``; an error naming
    ``where`` when one falls outside the video or too far from its frame."""
    indices = np.asarray([round(t * stream.average_fps) for t in timestamps], dtype=np.int64)
    outside = (indices < 0) | (indices >= stream.num_frames)
    if outside.any():
        bad = int(np.argmax(outside))
        raise LeRobotFormatError(
            f"{where}: timestamp {timestamps[bad]:.6f} s (frame {int(indices[bad])}) is outside "
            f"the video, which has {stream.num_frames} frames at {stream.average_fps:g} fps "
            f"({stream.path}); the episodes table's from_timestamp or the data's timestamps "
            "are wrong, or the video is truncated"
        )
    query = np.asarray(timestamps, dtype=np.float32)
    found = stream.pts[indices].astype(np.float32)
    far = ~(np.abs(found - query) < np.float32(tolerance_s))
    if far.any():
        bad = int(np.argmax(far))
        raise LeRobotFormatError(
            f"{where}: timestamp {timestamps[bad]:.6f} s is {abs(found[bad] - query[bad]):.6f} s "
            f"from the nearest frame of {stream.path} (tolerance {tolerance_s} s); LeRobot "
            "refuses this item too (the video and the data's timestamps are out of sync)"
        )
    return indices


def decode(stream: VideoStream, first: int, count: int, where: str) -> np.ndarray:
    """Frames ``first .. first + count - 1`` (presentation order) as uint8 RGB, shape
    ``(count, height, width, 3)``, decoded by FFmpeg from the keyframe before ``first``."""
    command = [_tool("ffmpeg"), "-v", "error", "-nostdin"]
    if first > 0:  # halfway between the previous frame and this one: no rounding doubt
        seek = (stream.pts[first - 1] + stream.pts[first]) / 2
        command += ["-ss", f"{seek:.6f}"]
    command += [
        *("-i", stream.path, "-map", "0:v:0", "-frames:v", str(count)),
        *("-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"),
    ]
    data = _run(command, f"{where} ({stream.path})")
    size = stream.height * stream.width * 3
    if len(data) != count * size:
        raise LeRobotFormatError(
            f"{where}: {stream.path} gave {len(data) // size} frames from frame {first}, "
            f"expected {count}; the video is truncated or damaged"
        )
    return np.frombuffer(data, np.uint8).reshape(count, stream.height, stream.width, 3)


def check_decodable(key: str, feature: dict[str, Any], where: str) -> None:
    """Refuses depth video (LeRobot's 12-bit depth maps): LeRobot 0.4's reader turns every
    video into 8-bit RGB, so there is no lossless reference to convert it to."""
    info = feature.get("info") or {}
    pix_fmt = str(info.get("video.pix_fmt", ""))
    if info.get("video.is_depth_map") or (pix_fmt.startswith("gray") and pix_fmt != "gray"):
        raise LeRobotFormatError(
            f"{where}: {key} is a depth video ({pix_fmt or 'is_depth_map'}); rlds_hub does not "
            "convert depth video (LeRobot 0.4 decodes it to 8-bit RGB, which loses its "
            "precision). Convert the other features by dropping it from meta/info.json's "
            "features in a copy of the dataset"
        )
