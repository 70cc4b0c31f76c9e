"""RLDS -> LeRobot (``rlds-hub export --format lerobot``), checked with LeRobot's own library:
LeRobot 0.4.4's ``LeRobotDataset`` (run in its own venv by ``rlds_hub.testing.lerobot_peer``)
reads every value of the export equal to plain TFDS's reading of the source, without
warnings; the statistics equal LeRobot's own functions' on the same values; and RLDS ->
LeRobot -> RLDS (``convert --source-format lerobot``) is bit-exact."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlds_hub.beam.jobs.convert import convert
from rlds_hub.beam.jobs.export import export
from rlds_hub.format.plan import Leaf, LeafKind, Plan
from rlds_hub.lerobot import stats
from rlds_hub.lerobot.layout import UnsupportedFeatureError, feature_map
from rlds_hub.storage import iter_episodes, open_dataset
from rlds_hub.testing import record
from rlds_hub.testing.comparisons import assert_bit_equal, read_episodes_with_tfds
from rlds_hub.testing.envs import FramesEnv, nested_env
from rlds_hub.testing.lerobot_peer import lerobot_python, read_dataset
from rlds_hub.testing.oxe import oxe_episode, write_oxe_dataset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def frames_dataset(tmp_path_factory: pytest.TempPathFactory) -> str:
    """FramesEnv episodes (24 x 24 camera, 2-d float32 position, float64 reward with a NaN
    and an inf) recorded by rlds_hub in two shards."""
    path = tmp_path_factory.mktemp("frames") / "frames"
    record(FramesEnv(lengths=(6, 9, 4)), path, episodes=3, max_episodes_per_shard=2)
    return str(path)


def _lerobot_items(root: Path, tmp_path: Path) -> tuple[dict[int, dict], dict]:
    items, meta = read_dataset(root, tmp_path / "read.npz", repo_id="rlds_hub/export")
    assert meta["warnings"] == []
    return items, meta


def _pixels(value: np.ndarray) -> np.ndarray:
    """LeRobot's camera tensor (C, H, W float in [0, 1]) as H x W x C uint8."""
    return np.round(np.moveaxis(value, 0, -1) * 255.0).astype(np.uint8)


@pytest.mark.slow
def test_lerobot_reads_every_value_of_an_rlds_hub_recording(frames_dataset, tmp_path):
    out = tmp_path / "lerobot"
    summary = export(
        frames_dataset, out, format="lerobot", video_codec="none", fps=15, data_file_mb=0.002
    )
    assert summary["episodes"] == 3
    # the tiny cap cut several data files and several episodes-table files
    assert len(list((out / "data").glob("*/*.parquet"))) > 2
    assert len(list((out / "meta" / "episodes").glob("*/*.parquet"))) > 1
    items, meta = _lerobot_items(out, tmp_path)
    source = read_episodes_with_tfds(frames_dataset)
    steps = [(e, t, s) for e, episode in enumerate(source) for t, s in enumerate(episode["steps"])]
    assert meta["num_frames"] == len(steps) == len(items)
    for index, (episode, t, step) in enumerate(steps):
        item = items[index]
        assert np.array_equal(
            _pixels(item["observation.images.image"]), step["observation"]["image"]
        )
        assert item["observation.state"].dtype == np.float32
        assert np.array_equal(item["observation.state"], step["observation"]["position"])
        # LeRobot reads a shape-(1,) feature as a scalar: rlds_hub.json keeps the shape
        assert np.array_equal(item["action"].reshape(step["action"].shape), step["action"])
        # LeRobot's reader returns float64 as float32; the Parquet keeps float64 (below)
        assert item["next.reward"].dtype == np.float32 and step["reward"].dtype == np.float64
        np.testing.assert_array_equal(item["next.reward"].reshape(()), np.float32(step["reward"]))
        np.testing.assert_array_equal(item["discount"].reshape(()), np.float32(step["discount"]))
        for flag in ("is_first", "is_last", "is_terminal"):
            assert bool(item[flag]) == bool(step[flag]), (index, flag)
        assert bool(item["next.done"]) == bool(step["is_last"])
        assert int(item["episode_index"]) == episode and int(item["frame_index"]) == t
        assert int(item["index"]) == index
        assert float(item["timestamp"]) == np.float32(t / 15)
        assert item["task"] == "frames"
    table = pq.read_table(sorted((out / "data").glob("*/*.parquet"))[0])
    assert table.schema.field("next.reward").type == pa.float64()
    rewards = np.concatenate(
        [pq.read_table(f)["next.reward"].to_numpy() for f in sorted((out / "data").glob("*/*"))]
    )
    assert rewards.tobytes() == np.array([s["reward"] for _, _, s in steps]).tobytes()
    rlds = json.loads((out / "meta" / "rlds_hub.json").read_text())
    assert rlds["columns"]["next.reward"] == {"rlds": "reward", "dtype": "float64", "shape": []}
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.image"]["dtype"] == "image"


@pytest.mark.slow
def test_oxe_layout_keeps_last_step_action_reward_and_instruction(tmp_path):
    rng = np.random.default_rng(3)
    episodes = [oxe_episode(i, n, rng, image_size=16) for i, n in enumerate((3, 4))]
    source = write_oxe_dataset(str(tmp_path / "oxe"), episodes, shards=1)
    out = tmp_path / "lerobot"
    export(source, out, format="lerobot", video_codec="none", fps=5, skip_unsupported=True)
    items, _ = _lerobot_items(out, tmp_path)
    expected = [s for e in read_episodes_with_tfds(source) for s in e["steps"]]
    for index, step in enumerate(expected):
        item = items[index]
        assert np.array_equal(item["action"], step["action"])  # the last step's too
        assert float(item["next.reward"]) == float(step["reward"])
        assert item["task"] == step["language_instruction"].decode()
        assert np.array_equal(
            _pixels(item["observation.images.image"]), step["observation"]["image"]
        )
        assert np.array_equal(
            _pixels(item["observation.images.wrist_image"]), step["observation"]["wrist_image"]
        )
    marker = json.loads((out / "export.json").read_text())
    assert marker["tasks"] == sum(len(e["steps"]) for e in episodes)


@pytest.mark.slow
def test_h264_export_loads_in_lerobot_and_reports_psnr(frames_dataset, tmp_path):
    out = tmp_path / "lerobot"
    summary = export(frames_dataset, out, format="lerobot", video_codec="h264", fps=10)
    quality = summary["video_quality"]["observation.images.image"]
    episodes = read_episodes_with_tfds(frames_dataset)
    # PSNR / SSIM are measured on up to 8 evenly spaced frames of each episode
    checked, first = [], 0
    for episode in episodes:
        n = len(episode["steps"])
        checked += (first + np.unique(np.linspace(0, n - 1, 8).round().astype(int))).tolist()
        first += n
    assert quality["frames"] == len(checked) == 7 + 8 + 5
    marker = json.loads((out / "export.json").read_text())
    assert marker["video_quality"] == summary["video_quality"]
    items, meta = _lerobot_items(out, tmp_path)
    assert meta["features"]["observation.images.image"]["dtype"] == "video"
    source = [s for e in episodes for s in e["steps"]]
    original = np.stack([source[i]["observation"]["image"] for i in checked])
    decoded = np.stack([_pixels(items[i]["observation.images.image"]) for i in checked])
    error = (original.astype(np.float64) - decoded) ** 2
    psnr = 10 * np.log10(255.0**2 / error.reshape(len(checked), -1).mean(axis=1))
    # LeRobot's decoder (torchcodec) sees the frames whose PSNR export.json reports
    assert abs(psnr.mean() - quality["psnr_mean_db"]) < 0.5
    assert quality["psnr_mean_db"] > 20.0


def test_unsupported_fields_are_refused_or_skipped_and_listed():
    plan = Plan(
        [
            Leaf("steps/action", LeafKind.NATIVE, np.dtype(np.float32), (2,), True),
            Leaf("steps/language_instruction", LeafKind.STRING, np.dtype(object), (), True),
            Leaf("steps/observation/note", LeafKind.STRING, np.dtype(object), (), True),
            Leaf("steps/observation/z", LeafKind.RAW, np.dtype(np.complex64), (2,), True),
        ]
    )
    with pytest.raises(UnsupportedFeatureError, match="--skip-unsupported") as error:
        feature_map(plan)
    assert "observation/note" in str(error.value) and "observation/z" in str(error.value)
    mapped = feature_map(plan, skip_unsupported=True)
    assert [c.key for c in mapped.columns] == ["action"]
    assert mapped.task_leaf is not None and mapped.task_leaf.name == "language_instruction"
    assert set(mapped.skipped) == {"observation/note", "observation/z"}


@pytest.mark.slow
def test_refusals_write_nothing(frames_dataset, tmp_path):
    out = tmp_path / "lerobot"
    with pytest.raises(ValueError, match="--fps"):
        export(frames_dataset, out, format="lerobot", video_codec="none")
    with pytest.raises(Exception, match="too small for the AV1 encoder"):
        export(frames_dataset, out, format="lerobot", video_codec="av1", fps=10)
    assert not out.exists()


_LEROBOT_STATS = """
import json, sys
import numpy as np
from lerobot.datasets.compute_stats import get_feature_stats
vector = np.load(sys.argv[1]); frames = np.load(sys.argv[2])
out = {}
for name, array, axis, keep in (("vector", vector, 0, False), ("frames", frames, (0, 2, 3), True)):
    s = get_feature_stats(array, axis=axis, keepdims=keep)
    out[name] = {k: np.asarray(v).tolist() for k, v in s.items()}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_statistics_equal_lerobots_own(tmp_path):
    rng = np.random.default_rng(7)
    vector = np.concatenate([rng.normal(size=(57, 3)), rng.integers(0, 4, (57, 1))], axis=1)
    frames = rng.integers(0, 256, (20, 12, 10, 3), dtype=np.uint8)
    np.save(tmp_path / "v.npy", vector)
    np.save(tmp_path / "f.npy", np.moveaxis(frames, -1, 1))  # LeRobot's channel-first
    done = subprocess.run(
        [
            str(lerobot_python()),
            "-c",
            _LEROBOT_STATS,
            str(tmp_path / "v.npy"),
            str(tmp_path / "f.npy"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    ours = {"vector": stats.vector_stats(vector), "frames": stats.camera_stats(frames)}
    for name, scale in (("vector", np.ptp(vector, axis=0)), ("frames", 255.0)):
        for key, value in ours[name].items():
            expected = np.asarray(theirs[name][key], np.float64)
            if name == "frames" and key != "count":
                expected = expected.reshape(3, 1, 1) / 255.0
            if name == "frames" and key == "std":
                continue  # LeRobot 0.4.4 squares uint8 pixels in uint8 (see stats.py)
            # LeRobot's quantiles come from a 5000-bin histogram: equal within two bins
            tolerance = 2 * scale / 5000 / (255.0 if name == "frames" else 1.0) + 1e-9
            np.testing.assert_allclose(
                np.asarray(value, np.float64).reshape(expected.shape),
                expected,
                atol=np.max(tolerance) if key.startswith("q") else 1e-9,
                err_msg=f"{name} {key}",
            )


@pytest.mark.slow
@pytest.mark.parametrize("env", ["frames", "nested"])
def test_round_trip_rlds_lerobot_rlds_is_bit_exact(env, tmp_path):
    """RLDS -> LeRobot (``none``) -> RLDS gives back every value bit for bit, dtypes and
    features.json included (float64 vectors and rewards, int32 scalars, bool flags, frames)."""
    source = tmp_path / "source"
    made = FramesEnv(lengths=(5, 3)) if env == "frames" else nested_env(lengths=(4, 2, 3))
    record(made, source, episodes=2 if env == "frames" else 3)
    export(source, tmp_path / "lerobot", format="lerobot", video_codec="none", fps=10)
    convert(tmp_path / "lerobot", tmp_path / "back", source_format="lerobot")
    expected_features = json.loads((source / "features.json").read_text())
    assert json.loads((tmp_path / "back" / "features.json").read_text()) == expected_features
    expected = list(iter_episodes(open_dataset(str(source)), "train"))
    actual = list(iter_episodes(open_dataset(str(tmp_path / "back")), "train"))
    assert len(actual) == len(expected)
    for before, after in zip(expected, actual, strict=True):
        assert_bit_equal(before, after)


def test_lerobot_options_without_format_lerobot_are_refused(frames_dataset, tmp_path, capsys):
    from rlds_hub.cli import main

    out = tmp_path / "out"
    code = main(["export", "--input", frames_dataset, "--output", str(out), "--fps", "10"])
    assert code == 2 and not out.exists()
    assert "--fps apply only to --format lerobot" in capsys.readouterr().err


@pytest.mark.slow
def test_round_trip_keeps_each_episodes_split(tmp_path):
    """Two splits -> LeRobot (``none``; ``meta/info.json``'s ``splits`` as LeRobot writes
    them) -> RLDS: the same splits in the same order, each bit-exact; ``--output-split``
    still puts every episode into one split."""
    source = tmp_path / "source"
    record(FramesEnv(lengths=(5, 3)), source, episodes=2)
    record(FramesEnv(lengths=(4,)), source, episodes=1, split="test")
    export(source, tmp_path / "lerobot", format="lerobot", video_codec="none", fps=10)
    info = json.loads((tmp_path / "lerobot" / "meta" / "info.json").read_text())
    assert info["splits"] == {"train": "0:2", "test": "2:3"}
    convert(tmp_path / "lerobot", tmp_path / "back", source_format="lerobot")
    original, back = open_dataset(str(source)), open_dataset(str(tmp_path / "back"))
    assert list(back.splits) == ["train", "test"]
    for split in ("train", "test"):
        expected = list(iter_episodes(original, split))
        actual = list(iter_episodes(back, split))
        assert len(actual) == len(expected) == (2 if split == "train" else 1)
        for before, after in zip(expected, actual, strict=True):
            assert_bit_equal(before, after)
    convert(tmp_path / "lerobot", tmp_path / "one", source_format="lerobot", split="all")
    merged = open_dataset(str(tmp_path / "one"))
    assert list(merged.splits) == ["all"]
    assert merged.split("all").num_episodes == 3
