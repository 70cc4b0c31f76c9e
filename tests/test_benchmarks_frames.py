"""The camera-frames benchmark (benchmarks/frames_throughput.py) end to end on a tiny
workload: every arm runs and reports, the ratios are computed from the same run. Nothing is
timed against a target here (docs/benchmarks.md, "Camera frames", has the real run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import frames_throughput


@pytest.mark.slow
def test_the_benchmark_runs_every_arm_on_a_tiny_workload(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RLDS_HUB_COLUMN_CACHE_MIN_BYTES", "0")  # tiny shards cached too
    out = tmp_path / "frames.json"
    frames_throughput.main(
        [
            *("--episodes", "2", "--steps", "12", "--height", "24", "--width", "32"),
            *("--batch", "4", "--history", "3", "--chunk", "4", "--shuffle-buffer", "2"),
            *("--seconds", "0.3", "--ceiling-frames", "16", "--lerobot-episodes", "0"),
            *("--apis", "numpy", "--frame-cache", "--threads-arms"),
            *("--data", str(tmp_path / "data"), "--out", str(out)),
        ]
    )
    report = json.loads(out.read_text())
    arms = report["arms"]
    threads_and_cache = {
        f"jpeg rlds_hub numpy {kind} {variant}"
        for kind in ("steps", "windows")
        for variant in ("threads", "frame cache")
    }
    threads_and_cache |= {f"png rlds_hub numpy {kind} threads" for kind in ("steps", "windows")}
    threads_and_cache |= {"jpeg copy ceiling", "jpeg frame cache build"}
    expected = {
        f"{store} rlds_hub {api} {kind}"
        for store in ("jpeg", "png")
        for api in ("numpy",)  # the JAX arms run the same loader (a smaller test)
        for kind in ("steps", "windows")
    }
    expected |= {"jpeg ceiling", "png ceiling", "jpeg tf.data steps", "jpeg tf.data windows"}
    assert set(arms) == expected | threads_and_cache
    for name, arm in arms.items():
        assert "error" not in arm, (name, arm.get("error"))
        assert arm["peak_tree_mib"] > 0
        if name.endswith("build"):
            assert arm["cache_bytes"] > 0 and arm["steps"] == 2 * 12, arm
            continue
        assert arm.get("samples_per_s", arm.get("frames_per_s", 0)) > 0, name
    window = arms["jpeg rlds_hub numpy windows"]["shapes"]
    assert window["observation/image"] == [4, 4, 24, 32, 3]  # batch, history + 1, frame
    assert arms["jpeg tf.data windows"]["shapes"]["image"] == [4, 4, 24, 32, 3]
    assert arms["png rlds_hub numpy steps"]["shapes"]["observation/image"] == [4, 24, 32, 3]
    assert arms["jpeg tf.data steps"]["shapes"]["image"] == [4, 24, 32, 3]
    ratios = report["ratios"]
    entry = ratios["jpeg numpy windows"]
    assert entry["of_ceiling"] == pytest.approx(
        entry["decoded_frames_per_s"] / arms["jpeg ceiling"]["frames_per_s"]
    )
    assert entry["x_tf_data"] == pytest.approx(
        arms["jpeg rlds_hub numpy windows"]["samples_per_s"]
        / arms["jpeg tf.data windows"]["samples_per_s"]
    )
    assert "x_tf_data" not in ratios["png numpy steps"]  # tf.data reads the JPEG store only
    copy = arms["jpeg copy ceiling"]
    assert copy["windows_per_s"] == pytest.approx(copy["frames_per_s"] / 4)  # history 3
    assert entry["of_copy_ceiling"] == pytest.approx(
        entry["decoded_frames_per_s"] * 4 / copy["frames_per_s"]
    )
    decode = arms["jpeg ceiling"]["frames_per_s"]
    combined = 1 / (1 / decode + 4 / copy["frames_per_s"])
    assert entry["of_combined_ceiling"] == pytest.approx(entry["decoded_frames_per_s"] / combined)
    assert "of_copy_ceiling" not in ratios["jpeg numpy steps"]  # single steps copy nothing
    assert ratios["jpeg numpy steps frame cache"]["x_tf_data"] > 0
    assert ratios["jpeg numpy windows threads"]["of_ceiling"] > 0


@pytest.mark.slow
def test_lerobot_reads_the_same_frames_with_its_own_loader(tmp_path: Path) -> None:
    try:
        frames_throughput.lerobot_python()
    except SystemExit as e:
        pytest.skip(str(e))
    root = tmp_path / "image"
    written = frames_throughput.lerobot(
        "write", root=root, mode="image", episodes=1, steps=6, height=24, width=32
    )
    assert "error" not in written, written.get("error")
    read = frames_throughput.lerobot(
        "read", root=root, mode="image", history=2, chunk=3, batch=2, workers=1, seconds=0.2
    )
    assert "error" not in read, read.get("error")
    assert read["samples"] > 0 and read["dataset_steps"] == 6
    assert read["shapes"]["observation.images.image"] == [2, 3, 3, 24, 32]  # LeRobot: C, H, W
    assert read["shapes"]["action"] == [2, 3, 7]
