"""A camera-heavy workload shaped like an Open X-Embodiment manipulation dataset.

Each episode holds two RGB cameras (a scene camera and a wrist camera, ``height x width x 3``
uint8), 7-d float32 proprioception (``observation/state``), 7-d float32 actions, a language
instruction (one per episode, stored on every step as OXE does) and the usual RLDS flags, in
the ``oxe`` layout (every step, the last included, holds a real action; reward 1 on the last).

Frames look like camera images, not flat colours: a textured scene (smooth colour regions,
mid-frequency texture, fine static grain and a few objects) seen through a camera that pans
smoothly, a moving gripper, flickering exposure and per-frame sensor noise — so PNG and
JPEG frames are about as large as real camera frames. Generation is vectorised per episode
(NumPy) and episodes are generated and encoded in a pool of processes.

Two stores of the same episodes (:func:`write_camera_datasets`):

- ``png``: rlds_hub's writer (:class:`~rlds_hub.storage.writer.DatasetWriter`), lossless PNG
  frames, rlds_hub's default;
- ``jpeg``: TFDS's own builder (``tfds.features.Image(encoding_format="jpeg")``, as OXE), with
  frames encoded by libjpeg-turbo (quality 95, 4:2:0, TensorFlow's ``encode_jpeg`` defaults).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

CAMERAS = ("image", "wrist_image")
STATE_SIZE = 7
ACTION_SIZE = 7
JPEG_QUALITY = 95
_VERBS = ("pick up", "push", "move", "place", "lift", "slide")
_COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "white", "black")
_OBJECTS = ("block", "cup", "sponge", "can", "bowl", "marker", "towel", "apple")
_PLACES = ("to the left", "into the drawer", "next to the sink", "onto the plate", "forward")


@dataclasses.dataclass(frozen=True)
class CameraWorkload:
    """How many episodes of how many steps, with frames of which size.

    The benchmark uses at least 100 episodes of 200 steps of 180x320 frames; tests use a few
    tiny episodes. Episode ``i`` is the same for a given ``seed`` whatever else is generated.
    """

    episodes: int = 100
    steps: int = 200
    height: int = 180
    width: int = 320
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("episodes", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.height < 16 or self.width < 16:
            raise ValueError(
                f"frames must be at least 16x16 pixels, got {self.height}x{self.width}"
            )

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    @property
    def frames(self) -> int:
        """Camera frames in the whole workload."""
        return self.episodes * self.steps * len(CAMERAS)


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of ``[h, w, C]`` to ``[height, width, C]`` (float32)."""
    gh, gw = grid.shape[:2]
    ys = np.linspace(0, gh - 1, height, dtype=np.float32)
    xs = np.linspace(0, gw - 1, width, dtype=np.float32)
    y0 = np.minimum(ys.astype(np.int64), gh - 2)
    x0 = np.minimum(xs.astype(np.int64), gw - 2)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    top = grid[y0][:, x0] * (1 - wx) + grid[y0][:, x0 + 1] * wx
    bottom = grid[y0 + 1][:, x0] * (1 - wx) + grid[y0 + 1][:, x0 + 1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def _scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A static textured scene, ``[height, width, 3]`` float32 in [0, 255]."""
    scene = _upsample(rng.uniform(40, 220, (5, 8, 3)), height, width)
    texture = rng.normal(0, 20, (height // 6, width // 6, 1)) + rng.normal(
        0, 5, (height // 6, width // 6, 3)
    )  # mostly brightness, a little colour
    scene += _upsample(texture, height, width)
    scene += rng.normal(0, 8, (height, width, 1)).astype(np.float32)  # grain (grey)
    for _ in range(6):  # objects on the table, with a soft shading
        h, w = rng.integers(height // 12, height // 4), rng.integers(width // 12, width // 4)
        y, x = rng.integers(0, height - h), rng.integers(0, width - w)
        shade = np.linspace(1.0, 0.7, h, dtype=np.float32)[:, None, None]
        scene[y : y + h, x : x + w] = rng.uniform(0, 255, 3).astype(np.float32) * shade
    return scene


def camera_frames(workload: CameraWorkload, episode: int, camera: int) -> np.ndarray:
    """The frames of one camera of one episode, ``[steps, height, width, 3]`` uint8."""
    rng = np.random.default_rng([workload.seed, episode, camera])
    steps, height, width = workload.steps, workload.height, workload.width
    scene = _scene(rng, height * 3 // 2, width * 3 // 2)
    t = np.arange(steps, dtype=np.float32) / max(steps - 1, 1)
    speed = 1.0 + camera  # the wrist camera moves faster
    phase = rng.uniform(0, 2 * np.pi, 2)
    span_y, span_x = scene.shape[0] - height, scene.shape[1] - width
    # the camera pans smoothly over the scene
    oy = (span_y * (0.5 + 0.5 * np.sin(np.pi * speed * t + phase[0]))).astype(np.int64)
    ox = (span_x * (0.5 + 0.5 * np.sin(np.pi * speed * t + phase[1]))).astype(np.int64)
    # the gripper: a dark disc on a smooth path
    cy = (height * (0.5 + 0.3 * np.sin(2 * np.pi * t + phase[0]))).astype(np.int64)
    cx = (width * (0.5 + 0.35 * np.cos(2 * np.pi * t + phase[1]))).astype(np.int64)
    radius = max(2, height // 8)
    offsets = np.arange(-radius, radius + 1)
    disc = offsets[:, None] ** 2 + offsets[None, :] ** 2 < radius**2
    gain = 1.0 + 0.05 * np.sin(2 * np.pi * 3 * t + phase[1])  # exposure flicker
    # sensor noise: each frame a different slice of one pool of Gaussian noise
    size = height * width * 3
    noise = rng.standard_normal(size + 4099, dtype=np.float32) * 3.0
    starts = rng.integers(0, 4099, steps)
    frames = np.empty((steps, height, width, 3), np.uint8)
    padded = np.pad(scene, ((radius, radius + 1), (radius, radius + 1), (0, 0)))
    for i in range(steps):
        view = padded[radius + oy[i] :, radius + ox[i] :]
        patch = view[cy[i] - radius : cy[i] + radius + 1, cx[i] - radius : cx[i] + radius + 1]
        saved = patch.copy()
        patch[disc] = patch[disc] * 0.3 + 20
        frame = view[:height, :width] * gain[i]
        frame += noise[starts[i] : starts[i] + size].reshape(height, width, 3)
        np.clip(frame, 0, 255, out=frame)
        frames[i] = frame
        patch[...] = saved  # the scene itself stays as it was
    return frames


def instruction(workload: CameraWorkload, episode: int) -> str:
    """The episode's language instruction."""
    rng = np.random.default_rng([workload.seed, episode, 99])
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    return f"{pick(_VERBS)} the {pick(_COLOURS)} {pick(_OBJECTS)} {pick(_PLACES)}"


def episode_columns(workload: CameraWorkload, episode: int) -> dict[str, Any]:
    """One episode as flat step columns (``steps/observation/image`` -> ``[steps, ...]``)."""
    rng = np.random.default_rng([workload.seed, episode, 7])
    steps = workload.steps
    t = np.arange(steps + 1, dtype=np.float64)[:, None]
    frequency = rng.uniform(0.01, 0.05, STATE_SIZE)
    phase = rng.uniform(0, 2 * np.pi, STATE_SIZE)
    trajectory = np.sin(frequency * t + phase)  # a smooth arm trajectory
    state = trajectory[:-1].astype(np.float32)
    action = np.diff(trajectory, axis=0).astype(np.float32) * 10
    action[:, -1] = (trajectory[1:, -1] > 0).astype(np.float32)  # gripper open / closed
    last = np.arange(steps) == steps - 1
    text = np.empty(steps, object)
    text[:] = instruction(workload, episode)
    columns: dict[str, Any] = {
        f"steps/observation/{name}": camera_frames(workload, episode, camera)
        for camera, name in enumerate(CAMERAS)
    }
    columns.update(
        {
            "steps/observation/state": state,
            "steps/action": action,
            "steps/reward": last.astype(np.float32),
            "steps/discount": np.ones(steps, np.float32),
            "steps/is_first": np.arange(steps) == 0,
            "steps/is_last": last,
            "steps/is_terminal": last,
            "steps/language_instruction": text,
        }
    )
    return columns


# ---- stores ----------------------------------------------------------------------------------


def _specs(workload: CameraWorkload) -> dict[str, Any]:
    from dm_env import specs

    image = specs.Array(workload.frame_shape, np.uint8)
    return {
        "observation_spec": {
            **{name: image for name in CAMERAS},
            "state": specs.Array((STATE_SIZE,), np.float32),
        },
        "action_spec": specs.Array((ACTION_SIZE,), np.float32),
        "reward_spec": specs.Array((), np.float32),
        "discount_spec": specs.Array((), np.float32),
        "step_metadata_spec": {"language_instruction": specs.Array((), object)},
    }


def rlds_hub_features(workload: CameraWorkload) -> dict[str, Any]:
    """``features.json`` of the PNG store (rlds_hub's lossless default)."""
    from rlds_hub.format.features import episode_features

    return episode_features(**_specs(workload), image_encoding="png")


@dataclasses.dataclass
class _Encoded:
    index: int
    png_record: bytes | None
    jpeg_steps: list[dict[str, Any]] | None
    png_bytes: int
    jpeg_bytes: int


def _encode_episode(workload: CameraWorkload, episode: int, png: bool, jpeg: bool) -> _Encoded:
    """One episode generated and encoded (runs in a worker process)."""
    import simplejpeg

    from rlds_hub.format.encode import ExampleEncoder
    from rlds_hub.format.images import encode_png

    columns = episode_columns(workload, episode)
    record, jpeg_steps, png_size, jpeg_size = None, None, 0, 0
    if png:
        encoder = ExampleEncoder(rlds_hub_features(workload))
        record = encoder.encode(columns)
        encoder.close()
        png_size = sum(len(encode_png(columns[f"steps/observation/{c}"][0])) for c in CAMERAS)
    if jpeg:
        cameras = {
            name: [
                simplejpeg.encode_jpeg(
                    frame, quality=JPEG_QUALITY, colorspace="RGB", colorsubsampling="420"
                )
                for frame in columns[f"steps/observation/{name}"]
            ]
            for name in CAMERAS
        }
        jpeg_size = sum(len(cameras[c][0]) for c in CAMERAS)
        jpeg_steps = [
            {
                "observation": {
                    **{name: cameras[name][t] for name in CAMERAS},
                    "state": columns["steps/observation/state"][t],
                },
                "action": columns["steps/action"][t],
                "reward": columns["steps/reward"][t],
                "discount": columns["steps/discount"][t],
                "is_first": bool(columns["steps/is_first"][t]),
                "is_last": bool(columns["steps/is_last"][t]),
                "is_terminal": bool(columns["steps/is_terminal"][t]),
                "language_instruction": columns["steps/language_instruction"][t],
            }
            for t in range(workload.steps)
        ]
    return _Encoded(episode, record, jpeg_steps, png_size, jpeg_size)


def _encoded_episodes(
    workload: CameraWorkload, png: bool, jpeg: bool, workers: int | None
) -> Iterator[_Encoded]:
    """Every episode encoded, in order, by a pool of processes (spawned: the caller may hold
    TensorFlow's threads, which do not survive a fork)."""
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        for i in range(workload.episodes):
            yield _encode_episode(workload, i, png, jpeg)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending = [
            pool.submit(_encode_episode, workload, i, png, jpeg)
            for i in range(min(workload.episodes, 2 * workers))
        ]
        submitted = len(pending)
        while pending:
            done = pending.pop(0).result()
            if submitted < workload.episodes:  # at most 2 * workers episodes in flight
                pending.append(pool.submit(_encode_episode, workload, submitted, png, jpeg))
                submitted += 1
            yield done


@dataclasses.dataclass(frozen=True)
class CameraDatasets:
    """Where :func:`write_camera_datasets` wrote each store (None: not asked for), the bytes
    of one step's frames (all cameras, episode 0's first step) in each encoding, and the
    seconds generating and writing took."""

    png: str | None
    jpeg: str | None
    png_frame_bytes: int
    jpeg_frame_bytes: int
    seconds: float


def write_camera_datasets(
    directory: str | os.PathLike,
    workload: CameraWorkload,
    *,
    png: bool = True,
    jpeg: bool = True,
    workers: int | None = None,
    shards: int | None = None,
) -> CameraDatasets:
    """Writes the workload's episodes, generated and encoded once, as the PNG store
    (``directory/png``, rlds_hub's writer) and the JPEG store (TFDS's builder, under
    ``directory/jpeg``); returns where they are.

    ``shards``: shards of each store (default: about 16 episodes a shard, as OXE's shards).
    Raises FileExistsError when a store's directory exists already (write into a new one).
    """
    if not (png or jpeg):
        raise ValueError("write_camera_datasets: ask for png=True, jpeg=True or both")
    directory = Path(directory)
    targets = [directory / name for name, wanted in (("png", png), ("jpeg", jpeg)) if wanted]
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        raise FileExistsError(f"{existing} exist already: write the workload into a new directory")
    shards = shards or max(1, workload.episodes // 16)
    per_shard = -(-workload.episodes // shards)
    started = time.perf_counter()
    sizes = {"png": 0, "jpeg": 0}
    writer = _png_writer(directory / "png", workload, per_shard) if png else None

    def episodes() -> Iterator[tuple[int, dict[str, Any]]]:
        for encoded in _encoded_episodes(workload, png, jpeg, workers):
            if encoded.index == 0:
                sizes.update(png=encoded.png_bytes, jpeg=encoded.jpeg_bytes)
            if writer is not None:
                writer.append(encoded.png_record, _index_row(workload))
            if encoded.jpeg_steps is not None:
                yield encoded.index, {"steps": encoded.jpeg_steps}

    try:
        if jpeg:
            jpeg_path = _write_tfds(directory / "jpeg", workload, episodes(), shards)
        else:
            for _ in episodes():
                pass
            jpeg_path = None
    finally:
        if writer is not None:
            writer.close()
    return CameraDatasets(
        png=str(directory / "png") if png else None,
        jpeg=jpeg_path,
        png_frame_bytes=sizes["png"],
        jpeg_frame_bytes=sizes["jpeg"],
        seconds=time.perf_counter() - started,
    )


def _index_row(workload: CameraWorkload) -> dict[str, Any]:
    return {"num_steps": workload.steps, "terminated": True, "return": 1.0}


def _png_writer(path: Path, workload: CameraWorkload, per_shard: int) -> Any:
    from rlds_hub._version import __version__
    from rlds_hub.format.metadata import DatasetMetadata
    from rlds_hub.storage.writer import DatasetWriter

    writer = DatasetWriter(
        path,
        name="camera_workload",
        max_episodes_per_shard=per_shard,
        max_bytes_per_shard=None,
        description="An Open X-Embodiment-like camera workload (rlds_hub.testing.cameras).",
    )
    try:
        writer.set_features(
            rlds_hub_features(workload),
            metadata=DatasetMetadata(
                rlds_hub_version=__version__, image_encoding="png", layout="oxe"
            ),
        )
    except BaseException:
        writer.close()
        raise
    return writer


def _write_tfds(
    directory: Path, workload: CameraWorkload, episodes: Iterator[Any], shards: int
) -> str:
    import tensorflow_datasets as tfds

    from rlds_hub.testing.oxe import write_tfds_dataset

    image = tfds.features.Image(shape=workload.frame_shape, encoding_format="jpeg")
    scalar = tfds.features.Scalar
    features = tfds.features.FeaturesDict(
        {
            "steps": tfds.features.Dataset(
                {
                    "observation": tfds.features.FeaturesDict(
                        {
                            **{name: image for name in CAMERAS},
                            "state": tfds.features.Tensor(shape=(STATE_SIZE,), dtype=np.float32),
                        }
                    ),
                    "action": tfds.features.Tensor(shape=(ACTION_SIZE,), dtype=np.float32),
                    "reward": scalar(dtype=np.float32),
                    "discount": scalar(dtype=np.float32),
                    "is_first": scalar(dtype=np.bool_),
                    "is_last": scalar(dtype=np.bool_),
                    "is_terminal": scalar(dtype=np.bool_),
                    "language_instruction": tfds.features.Text(),
                }
            ),
        }
    )
    return write_tfds_dataset(
        str(directory), features, episodes, name="camera_workload", shards=shards
    )
