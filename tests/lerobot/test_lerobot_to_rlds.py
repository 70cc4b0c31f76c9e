"""LeRobot -> RLDS (``rlds-hub convert --source-format lerobot``), proved with LeRobot's own
library: datasets written by LeRobot's writer (``LeRobotDataset.create`` + ``add_frame`` +
``save_episode``, run in LeRobot's venv by ``rlds_hub.testing.lerobot_peer``) are converted,
read back with plain TFDS, and compared value by value with LeRobot's own ``dataset[i]``
(pixels included); bad LeRobot directories fail naming the file and episode, writing
nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlds_hub.beam.job_values import Run
from rlds_hub.beam.jobs.convert import convert
from rlds_hub.beam.sources import SourceFormatError, detect_format
from rlds_hub.cli import main
from rlds_hub.format.metadata import DatasetMetadata
from rlds_hub.inspection.validate import validate
from rlds_hub.storage import open_dataset
from rlds_hub.testing import read_episodes_with_tfds
from rlds_hub.testing.beam_jobs import FAST
from rlds_hub.testing.lerobot_peer import read_dataset, write_dataset

# make test-fast leaves these out (LeRobot's own writer runs in its venv per module, ~8 s); make test runs them.
pytestmark = pytest.mark.slow

CAMERAS = ("observation.images.front", "observation.images.wrist")
LENGTHS = {"video": "4,6,5", "image": "3,4"}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Datasets written by LeRobot's writer, one per camera dtype (made once per module)."""
    root = tmp_path_factory.mktemp("lerobot")
    made: dict[str, Path] = {}

    def make(camera_dtype: str) -> Path:
        if camera_dtype not in made:
            lengths = LENGTHS[camera_dtype]
            made[camera_dtype] = write_dataset(
                root / camera_dtype,
                camera_dtype=camera_dtype,
                episodes=len(lengths.split(",")),
                steps=lengths,
                rewards=camera_dtype == "video",
                seed=3,
            )
        return made[camera_dtype]

    return make


@pytest.fixture(scope="module")
def peer(written, tmp_path_factory):
    """A LeRobot-written dataset and LeRobot's own dataset[i] for every i."""
    root = tmp_path_factory.mktemp("lerobot_items")

    def make(camera_dtype: str):
        source = written(camera_dtype)
        items, meta = read_dataset(source, root / f"{camera_dtype}.npz")
        return source, items, meta

    return make


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _compare(rlds_path: Path, items: dict, with_rewards: bool) -> int:
    """Asserts every LeRobot item equals its RLDS step; returns the items compared."""
    episodes = read_episodes_with_tfds(str(rlds_path))
    by_index = {int(e["episode_index"]): e for e in episodes}
    compared = 0
    for i, item in sorted(items.items()):
        episode = by_index[int(item["episode_index"])]
        steps = episode["steps"]
        t = int(item["frame_index"])
        step = steps[t]
        assert len(steps) == int(episode["length"])
        for camera in CAMERAS:
            ours = step["observation"]["images"][camera.split(".")[-1]]
            assert ours.dtype == np.uint8
            # LeRobot returns C x H x W float32 in [0, 1]: uint8 / 255
            as_lerobot = ours.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
            assert np.array_equal(as_lerobot, item[camera]), f"item {i}: {camera} differs"
        for ours, theirs in (
            (step["observation"]["state"], item["observation.state"]),
            (step["action"], item["action"]),
            (step["timestamp"], item["timestamp"]),
            (step["frame_index"], item["frame_index"]),
            (step["index"], item["index"]),
            (step["task_index"], item["task_index"]),
        ):
            assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), f"item {i}"
        assert _text(step["language_instruction"]) == item["task"]
        assert bool(step["is_first"]) == (t == 0)
        assert bool(step["is_last"]) == (t == len(steps) - 1)
        if with_rewards:
            assert step["reward"] == item["next.reward"]
            assert bool(step["is_terminal"]) == bool(item["next.done"])
            assert step["discount"] == (0.0 if item["next.done"] else 1.0)
        else:
            assert step["reward"] == 0.0 and not step["is_terminal"]
        compared += 1
    return compared


@pytest.mark.slow
def test_video_dataset_via_the_cli_equals_lerobots_own_items(peer, tmp_path):
    source, items, meta = peer("video")
    assert meta["warnings"] == [] and meta["video_backend"] == "torchcodec"
    out = tmp_path / "rlds"
    argv = ["convert", "--source-format", "lerobot", "--input", str(source)]
    # one episode per work unit: episodes 1 and 2 are decoded after a seek into the video
    argv += ["--output", str(out), "--episodes-per-unit", "1", "--quiet", *FAST]
    assert main(argv) == 0
    assert _compare(out, items, with_rewards=True) == meta["num_frames"] == 15
    assert validate(open_dataset(out), tensorflow=False).ok  # shards, checksums, episodes.jsonl
    metadata = DatasetMetadata.from_json(json.loads((out / "metadata.json").read_text()))
    assert metadata.layout == "oxe"
    extra = metadata.source.extra
    assert (extra["fps"], extra["robot_type"], extra["codebase_version"]) == (
        10,
        "peer_arm",
        "v3.0",
    )
    assert extra["videos"][CAMERAS[0]] == {"codec": "av1", "pix_fmt": "yuv420p"}
    assert extra["tasks"][0] == "pick up the red cube"
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert rows[1]["source"]["videos"][CAMERAS[1]]["from_timestamp"] == pytest.approx(0.4)
    checksums = json.loads((out / "checksums.json").read_text())
    assert checksums  # the shards; the source files' checksums are in the provenance
    files = metadata.provenance.sources[0]["files"]
    assert any(name.endswith(".mp4") for name in files) and any(
        name.endswith(".parquet") for name in files
    )


@pytest.mark.slow
def test_image_dataset_converts_bit_for_bit(peer, tmp_path):
    source, items, meta = peer("image")
    assert meta["warnings"] == []
    out = tmp_path / "rlds"
    convert(source, out, source_format="lerobot", run=Run(beam_args=FAST, quiet=True))
    assert _compare(out, items, with_rewards=False) == meta["num_frames"] == 7


def test_detection_finds_a_lerobot_directory(written):
    assert detect_format(written("video")) == "lerobot"


@pytest.fixture
def broken(written, tmp_path):
    """A writable copy of the video dataset to break."""
    copy = tmp_path / "broken"
    shutil.copytree(written("video"), copy)
    return copy


def _refused(source: Path, tmp_path: Path, match: str) -> str:
    out = tmp_path / "out"
    with pytest.raises(SourceFormatError, match=match) as error:
        convert(source, out, source_format="lerobot", run=Run(beam_args=FAST, quiet=True))
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    return str(error.value)


def _edit_info(root: Path, edit) -> None:
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))


def _edit_table(path: Path, column: str, row: int, value) -> None:
    table = pq.read_table(path)
    values = table.column(column).to_pylist()
    values[row] = value
    index = table.column_names.index(column)
    field = table.schema.field(index)
    table = table.set_column(index, field, pa.array(values, type=field.type))
    pq.write_table(table, path)


def test_a_v21_dataset_names_its_version_and_lerobots_upgrade_command(broken, tmp_path):
    _edit_info(broken, lambda info: info.update(codebase_version="v2.1"))
    message = _refused(broken, tmp_path, "LeRobot v2.1 dataset")
    command = "python -m lerobot.datasets.v30.convert_dataset_v21_to_v30"
    assert f"{command} --repo-id=broken --root={tmp_path} --push-to-hub=false" in message


def test_a_lerobot_datasets_own_splits_are_kept(broken, tmp_path):
    _edit_info(broken, lambda info: info.update(splits={"train": "0:2", "val": "2:3"}))
    out = tmp_path / "out"
    convert(broken, out, source_format="lerobot", run=Run(beam_args=FAST, quiet=True))
    dataset = open_dataset(str(out))
    assert {name: s.num_episodes for name, s in dataset.splits.items()} == {"train": 2, "val": 1}
    lengths = [len(e["steps"]) for s in ("train", "val") for e in read_episodes_with_tfds(out, s)]
    assert lengths == [int(n) for n in LENGTHS["video"].split(",")]  # episodes in order


def test_splits_that_leave_out_episodes_are_refused_unless_one_split_is_asked(broken, tmp_path):
    _edit_info(broken, lambda info: info.update(splits={"train": "0:2"}))
    message = _refused(broken, tmp_path, "leave out episodes 2:3")
    assert "--output-split NAME" in message
    out = tmp_path / "one"
    convert(broken, out, source_format="lerobot", split="all", run=Run(beam_args=FAST, quiet=True))
    assert open_dataset(str(out)).split("all").num_episodes == 3


def test_a_missing_video_file_names_it_and_the_episode(broken, tmp_path):
    video = broken / "videos" / CAMERAS[1] / "chunk-000" / "file-000.mp4"
    video.unlink()
    message = _refused(broken, tmp_path, "is missing")
    assert str(video) in message and "episode 0" in message


def test_rows_whose_episode_index_disagrees_with_the_metadata_are_refused(broken, tmp_path):
    data = broken / "data" / "chunk-000" / "file-000.parquet"
    _edit_table(data, "episode_index", 5, 2)  # a row of episode 1 claims episode 2
    message = _refused(broken, tmp_path, "disagree")
    assert str(data) in message and "episode 1" in message


def test_frames_outside_the_video_are_refused_naming_file_and_episode(broken, tmp_path):
    episodes = broken / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    _edit_table(episodes, f"videos/{CAMERAS[0]}/from_timestamp", 2, 1.2)  # 1.2 + 0.4 > 1.5 s
    message = _refused(broken, tmp_path, "outside the video")
    assert "episode 2" in message and "file-000.mp4" in message


def test_depth_video_is_refused_with_the_reason(broken, tmp_path):
    def depth(info):
        info["features"][CAMERAS[1]]["info"]["video.is_depth_map"] = True
        info["features"][CAMERAS[1]]["info"]["video.pix_fmt"] = "gray12le"

    _edit_info(broken, depth)
    message = _refused(broken, tmp_path, "depth video")
    assert CAMERAS[1] in message


@pytest.mark.slow
def test_on_two_dask_workers_equals_the_direct_runner(written, tmp_path):
    """One episode per unit spread over a LocalCluster's two worker processes: the same
    dataset as the DirectRunner's (the reader pickles; units are independent)."""
    distributed = pytest.importorskip("dask.distributed")
    from distributed.diagnostics.task_stream import TaskStreamPlugin

    from rlds_hub.testing.beam_jobs import dataset_files

    source = written("video")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        stream = TaskStreamPlugin(cluster.scheduler)
        cluster.scheduler.add_plugin(stream, name="rlds-hub-task-stream")
        dask = ["--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}"]
        convert(source, tmp_path / "dask", episodes_per_unit=1, run=Run(beam_args=dask, quiet=True))
        assert len({task["worker"] for task in stream.buffer}) == 2
    convert(source, tmp_path / "direct", episodes_per_unit=1, run=Run(beam_args=FAST, quiet=True))
    assert dataset_files(tmp_path / "dask") == dataset_files(tmp_path / "direct")


def test_a_feature_of_a_dtype_rlds_hub_cannot_convert_is_named(broken, tmp_path):
    def audio(info):
        info["features"]["observation.audio"] = {"dtype": "audio", "shape": [1], "names": None}

    _edit_info(broken, audio)
    message = _refused(broken, tmp_path, "observation.audio")
    assert "'audio'" in message


# ---- the way back from rlds-hub export --format lerobot --------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """RLDS datasets and their LeRobot exports with frames in the Parquet (``none`` codec):
    ``frames``, an rlds_hub recording (PNG camera, float64 rewards with a NaN, float64
    discount, string and float64 episode metadata; rlds layout) and ``oxe``, an Open
    X-Embodiment-style TFDS dataset (JPEG camera, language instruction, nested episode
    metadata; oxe layout)."""
    from rlds_hub.beam.jobs.export import export
    from rlds_hub.testing import oxe_episode, record, write_oxe_dataset
    from rlds_hub.testing.envs import FramesEnv

    root = tmp_path_factory.mktemp("exported")

    def episode_fn(timestep, action, env):
        return {"operator": "alice", "score": np.float64(1 / 3)}

    record(FramesEnv(), root / "frames", episodes=3, episode_fn=episode_fn)
    rng = np.random.default_rng(3)
    episodes = [oxe_episode(i, n, rng, image_size=16) for i, n in enumerate((3, 4))]
    sources = {
        "frames": root / "frames",
        "oxe": Path(write_oxe_dataset(str(root / "oxe"), episodes, shards=1)),
    }
    for name, source in sources.items():
        export(source, root / f"lerobot_{name}", format="lerobot", video_codec="none", fps=10)
    return {name: (source, root / f"lerobot_{name}") for name, source in sources.items()}


def _assert_same_dataset(expected: Path, actual: Path) -> int:
    from rlds_hub.testing import assert_bit_equal

    original, back = read_episodes_with_tfds(str(expected)), read_episodes_with_tfds(str(actual))
    assert len(original) == len(back)
    steps = 0
    for a, b in zip(original, back, strict=True):
        assert set(a) == set(b)
        for key in set(a) - {"steps"}:
            assert_bit_equal(a[key], b[key], key)
        assert len(a["steps"]) == len(b["steps"])
        for step_a, step_b in zip(a["steps"], b["steps"], strict=True):
            assert_bit_equal(step_a, step_b)  # dtypes included (float64 rewards, NaN bits)
            steps += 1
    return steps


@pytest.mark.slow
@pytest.mark.parametrize(("name", "layout", "steps"), [("frames", "rlds", 22), ("oxe", "oxe", 7)])
def test_an_rlds_hub_export_comes_back_bit_exact(exported, tmp_path, name, layout, steps):
    from rlds_hub.lerobot.restore import lossless_images

    source, lerobot = exported[name]
    out = tmp_path / "back"
    argv = ["convert", "--source-format", "lerobot", "--input", str(lerobot), "--output", str(out)]
    assert main([*argv, "--quiet", *FAST]) == 0
    features = json.loads((source / "features.json").read_text())
    assert json.loads((out / "features.json").read_text()) == lossless_images(features)
    assert ("jpeg" in json.dumps(features)) == (name == "oxe")  # JPEG comes back as PNG
    assert _assert_same_dataset(source, out) == steps
    metadata = DatasetMetadata.from_json(json.loads((out / "metadata.json").read_text()))
    assert metadata.layout == layout
    assert metadata.source.extra["restored_from"] == "meta/rlds_hub.json"
    assert sum(metadata.source.extra["exported_splits"].values()) == len(
        read_episodes_with_tfds(str(source))
    )


@pytest.mark.slow
def test_an_export_record_that_cannot_rebuild_every_field_warns_and_converts_as_is(
    exported, tmp_path
):
    _, lerobot = exported["frames"]
    copy = tmp_path / "lerobot"
    shutil.copytree(lerobot, copy)
    path = copy / "meta" / "rlds_hub.json"
    record = json.loads(path.read_text())
    del record["columns"]["discount"]  # as if the export had skipped it
    path.write_text(json.dumps(record))
    out = tmp_path / "plain"
    with pytest.warns(UserWarning, match=r"step fields \['discount'\]"):
        convert(copy, out, source_format="lerobot", run=Run(beam_args=FAST, quiet=True))
    metadata = json.loads((out / "metadata.json").read_text())
    assert "not used" in metadata["source"]["export_record"]
    episodes = read_episodes_with_tfds(str(out))
    first = episodes[0]["steps"][0]
    assert first["lerobot"]["discount"].dtype == np.float64  # LeRobot's column, as stored
    assert first["is_first"] and "next" not in first
    assert first["reward"].dtype == np.float64  # next.reward's own dtype, not float32
