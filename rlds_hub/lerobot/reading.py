"""Reading a LeRobot v3.0 dataset directory without LeRobot: ``meta/info.json``, the tasks and
episodes tables (Parquet) and the data files, with the checks a converter needs (the version,
files that exist, episodes whose rows agree with the episodes table).

A v3.0 directory holds ``meta/info.json`` (version, fps, robot type, the features and the
path templates), ``meta/tasks.parquet`` (task string -> ``task_index``),
``meta/episodes/chunk-CCC/file-FFF.parquet`` (one row per episode: length, where its rows and
video frames are, its statistics), ``data/chunk-CCC/file-FFF.parquet`` (one row per frame,
episodes concatenated) and ``videos/<key>/chunk-CCC/file-FFF.mp4`` (episodes concatenated;
``videos/<key>/from_timestamp`` is where an episode starts in its file).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from typing import Any

import numpy as np

from rlds_hub.storage.dataset_files import DatasetError, check_split_name

INFO = "meta/info.json"
TASKS = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
SUPPORTED_VERSION = "v3.0"
#: LeRobot's own upgrade of a v2.1 dataset (lerobot.datasets.backward_compatibility); for a
#: local directory ``<root>/<repo_id>``, in place (the original is kept as ``<repo_id>_old``).
UPGRADE_COMMAND = (
    "python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id={repo_id} "
    "--root={root} --push-to-hub=false"
)
#: Columns every LeRobot frame has (LeRobot's DEFAULT_FEATURES).
DEFAULT_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


class LeRobotFormatError(DatasetError):
    """A LeRobot directory that cannot be read as v3.0 (the message names the file)."""


@dataclasses.dataclass(frozen=True)
class LeRobotInfo:
    """``meta/info.json`` of a v3.0 dataset."""

    root: str
    version: str
    fps: int
    robot_type: str | None
    features: dict[str, dict[str, Any]]
    data_path: str
    video_path: str | None
    total_episodes: int
    total_frames: int
    raw: dict[str, Any]

    @property
    def video_keys(self) -> list[str]:
        """Features stored as MP4 videos."""
        return [k for k, f in self.features.items() if f.get("dtype") == "video"]

    @property
    def image_keys(self) -> list[str]:
        """Features stored as images (PNG bytes) in the data files."""
        return [k for k, f in self.features.items() if f.get("dtype") == "image"]

    def data_file(self, chunk: int, file: int) -> str:
        """The path of data file ``(chunk, file)``."""
        return os.path.join(self.root, self.data_path.format(chunk_index=chunk, file_index=file))

    def video_file(self, key: str, chunk: int, file: int) -> str:
        """The path of camera ``key``'s video file ``(chunk, file)``."""
        if self.video_path is None:
            raise LeRobotFormatError(f"{self._info_file}: video features but no video_path")
        relative = self.video_path.format(video_key=key, chunk_index=chunk, file_index=file)
        return os.path.join(self.root, relative)

    @property
    def _info_file(self) -> str:
        return os.path.join(self.root, INFO)


SplitRange = tuple[str, int, int]  # a split's name and its episodes [start, stop)


def episode_splits(info: LeRobotInfo, num_episodes: int) -> list[SplitRange]:
    """``meta/info.json``'s ``splits`` as LeRobot writes them (split name -> ``"start:stop"``,
    a range of ``episode_index``: ``{"train": "0:50"}``), in the file's order, empty ranges
    left out; ``[]`` when the file has none. They must cover episodes 0..``num_episodes`` - 1
    once each, under valid split names; otherwise LeRobotFormatError says what is wrong and
    that ``--output-split NAME`` (every episode into one split) does without them."""
    raw = info.raw.get("splits")
    if not raw:
        return []
    where = f"{info._info_file}: splits {json.dumps(raw)}"
    escape = "; fix it, or pass --output-split NAME to put every episode into one split"
    if not isinstance(raw, dict):
        raise LeRobotFormatError(f"{where} is not an object of split -> 'start:stop'{escape}")
    ranges: list[SplitRange] = []
    for name, value in raw.items():
        start, sep, stop = str(value).partition(":")
        try:
            check_split_name(str(name))
            if not sep:
                raise ValueError
            first, end = int(start), int(stop)
        except DatasetError as e:
            raise LeRobotFormatError(f"{where}: {e}{escape}") from None
        except ValueError:
            raise LeRobotFormatError(
                f"{where}: {name!r} is {value!r}, not 'start:stop' episode indices{escape}"
            ) from None
        if not 0 <= first <= end <= num_episodes:
            raise LeRobotFormatError(
                f"{where}: {name!r} ({value}) is outside episodes 0:{num_episodes}{escape}"
            )
        if first < end:
            ranges.append((str(name), first, end))
    covered = sorted((first, end) for _, first, end in ranges)
    position = 0
    for first, end in covered:
        if first != position:
            problem = "overlap" if first < position else f"leave out episodes {position}:{first}"
            raise LeRobotFormatError(f"{where}: the splits {problem}{escape}")
        position = end
    if position != num_episodes:
        raise LeRobotFormatError(
            f"{where}: the splits leave out episodes {position}:{num_episodes}{escape}"
        )
    return ranges


def is_lerobot_dir(path: str) -> bool:
    """True if ``path`` holds a LeRobot dataset (``meta/info.json`` with a codebase version)."""
    info = os.path.join(path, INFO)
    if not os.path.isfile(info):
        return False
    try:
        with open(info, encoding="utf-8") as f:
            return "codebase_version" in json.load(f)
    except (OSError, ValueError):
        return False


def read_info(root: str) -> LeRobotInfo:
    """``meta/info.json``, checked: a v3.0 dataset, or an error saying how to upgrade it."""
    path = os.path.join(root, INFO)
    if not os.path.isfile(path):
        raise LeRobotFormatError(
            f"{root} is not a LeRobot dataset: {INFO} is missing (LeRobot v3.0 datasets hold "
            "meta/info.json, meta/episodes/, data/ and videos/)"
        )
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise LeRobotFormatError(f"{path}: not readable as JSON ({e})") from e
    version = str(raw.get("codebase_version", "?"))
    if version != SUPPORTED_VERSION:
        if version.startswith("v2"):
            full = os.path.abspath(root)
            command = UPGRADE_COMMAND.format(
                repo_id=os.path.basename(full), root=os.path.dirname(full)
            )
            older = (
                ""
                if version == "v2.1"
                else " (it reads v2.1: bring a v2.0 dataset to v2.1 with an older LeRobot first)"
            )
            raise LeRobotFormatError(
                f"{root} is a LeRobot {version} dataset; rlds_hub reads {SUPPORTED_VERSION} "
                f"(LeRobot 0.4's format). Upgrade it in place with LeRobot's own converter"
                f"{older}: `{command}` (it keeps the original as {full}_old), then convert it"
            )
        raise LeRobotFormatError(
            f"{path}: codebase_version {version!r} is not supported; rlds_hub reads LeRobot "
            f"{SUPPORTED_VERSION} datasets"
        )
    missing = [k for k in ("fps", "features", "data_path") if k not in raw]
    if missing:
        raise LeRobotFormatError(f"{path}: missing {missing}; the file is not a v3.0 info.json")
    return LeRobotInfo(
        root=root,
        version=version,
        fps=int(raw["fps"]),
        robot_type=raw.get("robot_type"),
        features=dict(raw["features"]),
        data_path=str(raw["data_path"]),
        video_path=raw.get("video_path"),
        total_episodes=int(raw.get("total_episodes", 0)),
        total_frames=int(raw.get("total_frames", 0)),
        raw=raw,
    )


def _read_table(path: str, columns: list[str] | None = None) -> Any:
    import pyarrow.parquet as pq

    if not os.path.isfile(path):
        raise LeRobotFormatError(f"{path} is missing")
    try:
        return pq.read_table(path, columns=columns)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, KeyError for bad files
        raise LeRobotFormatError(f"{path}: not a readable Parquet table ({e})") from e


def read_tasks(root: str) -> list[str]:
    """The task strings, by ``task_index``."""
    path = os.path.join(root, TASKS)
    table = _read_table(path)
    names = [n for n in table.column_names if n != "task_index"]
    if "task_index" not in table.column_names or len(names) != 1:
        raise LeRobotFormatError(
            f"{path}: expected the columns task_index and the task string, found "
            f"{table.column_names}"
        )
    indices = table.column("task_index").to_pylist()
    strings = table.column(names[0]).to_pylist()
    if sorted(indices) != list(range(len(indices))):
        raise LeRobotFormatError(f"{path}: task_index is not 0..{len(indices) - 1}")
    tasks = [""] * len(indices)
    for index, text in zip(indices, strings, strict=True):
        tasks[index] = str(text)
    return tasks


def read_episodes(root: str) -> list[dict[str, Any]]:
    """The episodes table (every ``meta/episodes`` file), one dict per episode in episode
    order, without the ``stats/*`` columns."""
    directory = os.path.join(root, EPISODES_DIR)
    files = sorted(
        os.path.join(d, n)
        for d, _, names in os.walk(directory)
        for n in names
        if n.endswith(".parquet")
    )
    if not files:
        raise LeRobotFormatError(f"{directory} holds no episodes table (chunk-*/file-*.parquet)")
    rows: list[dict[str, Any]] = []
    for path in files:
        table = _read_table(path)
        keep = [n for n in table.column_names if not n.startswith("stats/")]
        for row in table.select(keep).to_pylist():
            row["_file"] = path
            rows.append(row)
    rows.sort(key=lambda r: r["episode_index"])
    indices = [r["episode_index"] for r in rows]
    if indices != list(range(len(rows))):
        raise LeRobotFormatError(
            f"{directory}: episode_index is not 0..{len(rows) - 1} (found {indices[:10]}...)"
        )
    return rows


def episode_rows(
    info: LeRobotInfo, table: Any, episode: dict[str, Any], path: str, offset: int = 0
) -> Any:
    """The rows of ``episode`` in data file ``path`` (``table`` read from it, starting at
    global row ``offset``): checked against the episodes table (length, episode_index,
    global index range, frame_index 0..length-1)."""
    index = int(episode["episode_index"])
    where = f"{path}, episode {index}"
    start = int(episode["dataset_from_index"]) - offset
    stop = int(episode["dataset_to_index"]) - offset
    length = int(episode["length"])
    if stop - start != length or start < 0 or stop > table.num_rows:
        raise LeRobotFormatError(
            f"{where}: the episodes table puts it at rows {start}..{stop} (length {length}) "
            f"but the file has {table.num_rows} rows; the data file and meta/episodes disagree"
        )
    rows = table.slice(start, length)
    found = np.asarray(rows.column("episode_index").to_numpy())
    if not (found == index).all():
        other = sorted({int(v) for v in found if v != index})
        raise LeRobotFormatError(
            f"{where}: rows {start}..{stop} hold episode_index {other} as well; the data file "
            "and meta/episodes disagree (re-export the dataset or repair its episodes table)"
        )
    frames = np.asarray(rows.column("frame_index").to_numpy())
    if not np.array_equal(frames, np.arange(length)):
        raise LeRobotFormatError(f"{where}: frame_index is not 0..{length - 1}")
    return rows


def value_shape(feature: dict[str, Any]) -> tuple[int, ...]:
    """The shape of one frame's value as LeRobot stores and returns it: a ``(1,)`` feature
    is a scalar column (and ``dataset[i]`` gives a 0-d tensor)."""
    shape = tuple(int(d) for d in feature["shape"])
    if feature.get("dtype") not in ("image", "video") and shape == (1,):
        return ()
    return shape


def camera_shape(feature: dict[str, Any]) -> tuple[int, int, int]:
    """A camera's frame shape as height, width, channels (info.json may list it as
    channels, height, width: its ``names`` say which)."""
    shape = tuple(int(d) for d in feature["shape"])
    names = [str(n).lower() for n in (feature.get("names") or [])]
    if len(shape) != 3:
        raise LeRobotFormatError(f"a camera feature has shape {shape}; expected 3 dimensions")
    if names and names[0] in ("channel", "channels"):
        return shape[1], shape[2], shape[0]
    return shape[0], shape[1], shape[2]


def value_dtype(feature: dict[str, Any]) -> np.dtype:
    """The NumPy dtype of a feature's values (uint8 for cameras)."""
    if feature.get("dtype") in ("image", "video"):
        return np.dtype(np.uint8)
    try:
        return np.dtype(feature["dtype"])
    except TypeError as e:
        raise LeRobotFormatError(
            f"dtype {feature['dtype']!r} is not one rlds_hub converts (numeric, bool, string, "
            "image, video)"
        ) from e


def column_array(rows: Any, name: str, feature: dict[str, Any], where: str) -> np.ndarray:
    """A feature's column as one NumPy array of shape ``(frames, *value_shape)``."""
    if feature.get("dtype") == "image":
        return np.stack([decode_image(v, where, name) for v in rows.column(name).to_pylist()])
    shape = value_shape(feature)
    values = rows.column(name).to_pylist()
    if feature.get("dtype") == "string":
        return np.asarray(values, dtype=object).reshape((len(values), *shape))
    dtype = value_dtype(feature)
    array = np.asarray(values, dtype=dtype)
    if array.shape[1:] != shape and array.size == len(values) * int(np.prod(shape)):
        array = array.reshape((len(values), *shape))
    if array.shape[1:] != shape:
        raise LeRobotFormatError(
            f"{where}: column {name} has shape {array.shape[1:]}, info.json says {shape}"
        )
    return array


def decode_image(value: Any, where: str, name: str) -> np.ndarray:
    """One ``image`` cell (``{"bytes": PNG/JPEG, "path": ...}``) as an HxWxC uint8 array, as
    LeRobot's reader (datasets' Image feature, PIL) sees it."""
    from PIL import Image

    data = value.get("bytes") if isinstance(value, dict) else None
    if data is None:
        raise LeRobotFormatError(
            f"{where}: {name} holds no image bytes ({value!r:.80}); images must be embedded"
        )
    with Image.open(io.BytesIO(data)) as image:
        array = np.asarray(image)
    return np.ascontiguousarray(array[..., None] if array.ndim == 2 else array)


EXPORT_RECORD = "meta/rlds_hub.json"
EXPORT_FORMAT = "rlds_hub/lerobot-export"


def read_export_record(root: str) -> dict[str, Any] | None:
    """``meta/rlds_hub.json``, which ``rlds-hub export --format lerobot`` writes next to
    LeRobot's metadata (LeRobot ignores it): the source RLDS dataset's name, layout and
    ``features.json``, each LeRobot column's RLDS field, dtype and shape, the task's field and
    each episode's metadata. None when the dataset has none."""
    path = os.path.join(root, EXPORT_RECORD)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise LeRobotFormatError(f"{path}: not readable as JSON ({e})") from e
    if not isinstance(record, dict) or record.get("format") != EXPORT_FORMAT:
        raise LeRobotFormatError(f"{path}: not an rlds_hub export record ({EXPORT_FORMAT})")
    missing = [k for k in ("features_json", "columns", "episodes", "layout") if k not in record]
    if missing:
        raise LeRobotFormatError(f"{path}: missing {missing}")
    return record
