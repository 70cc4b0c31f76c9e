"""The ``rlds-hub`` command line: record, info, validate; exit codes and messages.

Commands run in-process through ``rlds_hub.cli.main`` (fast), except one end-to-end test of
the installed console script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlds_hub.cli import main
from rlds_hub.storage import shards
from rlds_hub.storage.dataset import open_dataset
from rlds_hub.testing import read_episodes_with_tfds

POINT_MASS = "dm_control/point_mass-easy"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _record(
    out: Path, *extra: str, env: str = POINT_MASS, policy: str = "expert", episodes: int = 2
) -> list[str]:
    return [
        "record",
        "--env",
        env,
        "--policy",
        policy,
        "--episodes",
        str(episodes),
        "--out",
        str(out),
        "--seed",
        "0",
        "--quiet",
        *extra,
    ]


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def point_mass(tmp_path_factory) -> Path:
    """Two expert episodes of point_mass-easy (1000 transitions each), recorded via the CLI."""
    out = tmp_path_factory.mktemp("cli") / "point_mass"
    assert main(_record(out)) == 0
    return out


# ---- record, validate, info ----------------------------------------------------------------


def test_record_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "pm"
    code, stdout, stderr = _run(capsys, _record(out, episodes=1))
    assert code == 0, stderr
    assert stdout.startswith("recorded 1 episodes (1,001 steps) of dm_control/point_mass-easy")
    assert "policy 'expert'" in stdout
    assert (out / "dataset_info.json").exists()


def test_record_two_episodes_message(tmp_path, capsys):
    code, stdout, _ = _run(capsys, _record(tmp_path / "pm2", "--max-episodes-per-shard", "1"))
    assert code == 0
    assert "recorded 2 episodes (2,002 steps)" in stdout
    assert len(open_dataset(tmp_path / "pm2").split("train").nonempty_shards) == 2


def test_validate_ok(point_mass, capsys):
    code, stdout, stderr = _run(capsys, ["validate", str(point_mass), "--quiet"])
    assert code == 0, stdout + stderr
    layout, line = stdout.strip().splitlines()
    assert layout.startswith("layout: rlds (")
    assert line.startswith("OK: ")
    assert "2 episodes, 2002 steps checked" in line
    assert "parsed by TFDS's own parser" in line
    assert line.endswith("; 0 errors, 0 warnings")


def test_info_text(point_mass, capsys):
    code, stdout, stderr = _run(capsys, ["info", str(point_mass)])
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith("dataset   point_mass 1.0.0 (tfrecord)")
    sessions = lines.index("sessions")
    assert lines[sessions + 1].split() == [
        "#",
        "started",
        "split",
        "env",
        "policy",
        "seed",
        "episodes",
    ]
    session = lines[sessions + 2].split()
    assert session[0] == "0" and session[2:] == [
        "train",
        "dm_control/point_mass-easy",
        "expert",
        "0",
        "2",
    ]
    assert any(line.startswith("layout    rlds: ") for line in lines)
    train = next(line for line in lines if line.strip().startswith("train"))
    assert " 2 episodes" in train
    assert "2,002 steps" in train
    assert "length mean 1001.0" in train
    assert "terminated 0" in train
    position = next(line for line in lines if line.strip().startswith("observation/position"))
    assert position.split()[:3] == ["observation/position", "float64", "[2]"]
    for field in (
        "action",
        "reward",
        "discount",
        "is_first",
        "is_last",
        "is_terminal",
        "observation/velocity",
    ):
        assert any(line.split()[:1] == [field] for line in lines), field


def test_info_json(point_mass, capsys):
    code, stdout, _ = _run(capsys, ["info", str(point_mass), "--json"])
    assert code == 0
    summary = json.loads(stdout)
    assert summary["name"] == "point_mass"
    assert summary["splits"]["train"]["episodes"] == 2
    assert summary["splits"]["train"]["steps"] == 2002
    assert summary["metadata"]["policy"] == "expert"
    assert summary["metadata"]["env_name"] == POINT_MASS
    assert summary["metadata"]["seed"] == 0
    assert len(summary["metadata"]["sessions"]) == 1
    features = {f["key"]: f for f in summary["features"]["steps"]}
    assert features["observation/position"]["dtype"] == "float64"
    assert features["observation/position"]["shape"] == [2]


def test_info_plot_writes_a_png(point_mass, tmp_path, capsys):
    png = tmp_path / "out.png"
    code, stdout, stderr = _run(capsys, ["info", str(point_mass), "--plot", str(png)])
    assert code == 0, stderr
    assert f"wrote {png}" in stdout
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1000


def test_recording_again_appends(point_mass, tmp_path, capsys):
    out = tmp_path / "point_mass"
    shutil.copytree(point_mass, out)
    code, stdout, stderr = _run(capsys, _record(out))
    assert code == 0, stderr
    assert "recorded 2 episodes" in stdout
    _, stdout, _ = _run(capsys, ["info", str(out), "--json"])
    summary = json.loads(stdout)
    assert summary["splits"]["train"]["episodes"] == 4
    assert summary["splits"]["train"]["steps"] == 4004
    sessions = summary["metadata"]["sessions"]
    assert len(sessions) == 2
    assert [s["policy"] for s in sessions] == ["expert", "expert"]
    code, stdout, _ = _run(capsys, ["validate", str(out), "--quiet"])
    assert code == 0
    assert "4 episodes, 4004 steps checked" in stdout


# ---- user errors: exit code 2 and a one-line message ---------------------------------------


def _assert_user_error(code: int, stdout: str, stderr: str, command: str) -> None:
    assert code == 2
    assert stderr.startswith(f"rlds-hub {command}: error: "), stderr
    assert "Traceback" not in stderr


def test_unknown_env_suggests_close_names(tmp_path, capsys):
    out = tmp_path / "never"
    code, stdout, stderr = _run(capsys, _record(out, env="dm_control/point_mass-eas"))
    _assert_user_error(code, stdout, stderr, "record")
    assert "Did you mean" in stderr
    assert "dm_control/point_mass-easy" in stderr
    assert not (out / "dataset_info.json").exists()


def test_unknown_policy_names_the_available_ones(tmp_path, capsys):
    code, stdout, stderr = _run(capsys, _record(tmp_path / "never", policy="expertt"))
    _assert_user_error(code, stdout, stderr, "record")
    assert "unknown policy 'expertt'" in stderr
    assert "random, expert" in stderr


def test_zero_episodes_is_refused(tmp_path, capsys):
    code, stdout, stderr = _run(capsys, _record(tmp_path / "never", episodes=0))
    _assert_user_error(code, stdout, stderr, "record")
    assert "--episodes must be >= 1" in stderr
    assert not (tmp_path / "never").exists()


def test_info_on_a_missing_path(tmp_path, capsys):
    code, stdout, stderr = _run(capsys, ["info", str(tmp_path / "nowhere")])
    _assert_user_error(code, stdout, stderr, "info")
    assert "does not exist" in stderr


def test_info_on_a_directory_without_dataset_info(point_mass, tmp_path, capsys):
    code, stdout, stderr = _run(capsys, ["info", str(tmp_path)])
    _assert_user_error(code, stdout, stderr, "info")
    assert "not an RLDS dataset" in stderr
    # The parent of a dataset names the dataset inside it.
    code, _, stderr = _run(capsys, ["info", str(point_mass.parent)])
    assert code == 2
    assert f"datasets inside it: {point_mass}" in stderr


def test_validate_on_a_missing_path(tmp_path, capsys):
    code, stdout, stderr = _run(capsys, ["validate", str(tmp_path / "nowhere"), "--quiet"])
    _assert_user_error(code, stdout, stderr, "validate")
    assert "does not exist" in stderr


def test_validate_a_corrupted_dataset_fails(point_mass, tmp_path, capsys):
    out = tmp_path / "corrupt"
    shutil.copytree(point_mass, out)
    (shard,) = out.glob("point_mass-train.tfrecord-*")
    offsets = [offset for offset, _ in shards.iter_tfrecord(shard)]
    data = bytearray(shard.read_bytes())
    data[offsets[1] + 100] ^= 0x10
    shard.write_bytes(bytes(data))

    code, stdout, stderr = _run(capsys, ["validate", str(out), "--quiet"])
    assert code == 1, stderr
    assert f"ERROR: train/{shard.name}: " in stdout
    assert "CRC mismatch" in stdout
    assert stdout.strip().splitlines()[-1].startswith("FAILED: ")
    assert "1 episodes, 1001 steps checked" in stdout


# ---- a Gymnasium env -----------------------------------------------------------------------


def test_record_gym_pendulum_expert(tmp_path, capsys):
    out = tmp_path / "pendulum"
    code, stdout, stderr = _run(
        capsys, _record(out, env="gym/Pendulum-v1", policy="expert", episodes=1)
    )
    assert code == 0, stderr
    assert "recorded 1 episodes (201 steps) of gym/Pendulum-v1" in stdout

    dataset = open_dataset(out)
    observation = dataset.plan["steps/observation"]
    assert observation.shape == (3,)
    assert observation.dtype == np.float32
    (episode,) = read_episodes_with_tfds(os.fspath(out))
    steps = episode["steps"]
    assert len(steps) == 201  # Pendulum truncates after 200 transitions
    assert steps[0]["observation"].dtype == np.float32
    assert [bool(s["is_first"]) for s in steps] == [True] + [False] * 200
    assert [bool(s["is_last"]) for s in steps] == [False] * 200 + [True]
    assert not any(bool(s["is_terminal"]) for s in steps)  # truncated, not terminated
    summary = json.loads(_run(capsys, ["info", str(out), "--json"])[1])
    assert summary["splits"]["train"]["terminated"] == 0
    assert summary["metadata"]["env_name"] == "gym/Pendulum-v1"


# ---- the installed console script ----------------------------------------------------------


@pytest.mark.slow
def test_console_script_end_to_end(tmp_path):
    script = Path(sys.executable).with_name("rlds-hub")
    assert script.exists(), f"console script not installed next to {sys.executable}"
    out = tmp_path / "e2e"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [os.fspath(script), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    recorded = run(*_record(out, policy="random", episodes=1))
    assert recorded.returncode == 0, recorded.stderr
    assert "recorded 1 episodes (1,001 steps)" in recorded.stdout

    validated = run("validate", str(out), "--quiet")
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.splitlines()[-1].startswith("OK: ")

    info = run("info", str(out), "--json")
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["splits"]["train"]["episodes"] == 1
    assert summary["metadata"]["policy"] == "random"

    missing = run("info", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "rlds-hub info: error: " in missing.stderr
    assert "does not exist" in missing.stderr


# ---- Ctrl-C, help, options ------------------------------------------------------------------


def test_ctrl_c_keeps_completed_episodes_and_exits_130(tmp_path):
    import signal
    import time

    script = Path(sys.executable).with_name("rlds-hub")
    out = tmp_path / "interrupted"
    process = subprocess.Popen(
        [
            os.fspath(script),
            "record",
            "--env",
            POINT_MASS,
            "--policy",
            "random",
            "--episodes",
            "1000",
            "--out",
            str(out),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:  # until at least two episodes are on disk
        rows = out / "episodes.jsonl"
        if rows.exists() and len(rows.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    kept = open_dataset(out).split("train").num_episodes
    assert kept >= 2
    assert f"interrupted: kept {kept} episodes" in stderr
    assert "the episode in progress was dropped" in stderr
    assert main(["validate", str(out), "--quiet", "--no-tensorflow"]) == 0


def test_record_help_shows_defaults_and_every_option_has_help(capsys):
    with pytest.raises(SystemExit):
        main(["record", "--help"])
    text = capsys.readouterr().out
    for fragment in (
        "(default: 10)",
        "(default: 0)",
        "(default: train)",
        "(default: 1000)",
        "--policy POLICY",
        "--allow-env-change",
    ):
        assert fragment in text, fragment
    from rlds_hub.cli import build_parser

    for action in build_parser()._subparsers._group_actions[0].choices["record"]._actions:
        assert action.help, action.dest


def test_policy_is_required_and_the_seed_is_recorded(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["record", "--env", POINT_MASS, "--out", str(tmp_path / "x")])
    assert "--policy" in capsys.readouterr().err
    out = tmp_path / "seeded"
    assert (
        main(
            [
                "record",
                "--env",
                POINT_MASS,
                "--policy",
                "random",
                "--episodes",
                "1",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert open_dataset(out).metadata["sessions"][0]["seed"] == 0


def test_validate_limit_minus_one_prints_every_problem(tmp_path, capsys):
    from rlds_hub.inspection.validate import Problem, Report, format_report

    report = Report("x", problems=[Problem("error", f"e{i}", "bad") for i in range(44)])
    lines = format_report(report, limit=-1).splitlines()
    assert len(lines) == 45 and lines[-1].endswith("44 errors, 0 warnings")
    assert format_report(Report("x", problems=[Problem("error", "e", "bad")])).endswith(
        "1 error, 0 warnings"
    )
    limited = format_report(report, limit=43).splitlines()
    assert limited[43] == "... and 1 more problems"


def test_stats_unknown_key_fails_before_any_progress(point_mass, capsys):
    code, stdout, stderr = _run(capsys, ["stats", str(point_mass), "--key", "nope"])
    _assert_user_error(code, stdout, stderr, "stats")
    assert "no step feature 'nope'" in stderr
    assert "episode/s" not in stderr and "%|" not in stderr


def test_info_and_plot_of_a_dataset_without_an_index(point_mass, tmp_path, capsys):
    out = tmp_path / "no_index"
    shutil.copytree(point_mass, out)
    (out / "episodes.jsonl").unlink()
    png = tmp_path / "plot.png"
    code, stdout, stderr = _run(capsys, ["info", str(out), "--plot", str(png), "--quiet"])
    assert code == 0, stderr
    train = next(line for line in stdout.splitlines() if line.strip().startswith("train"))
    assert "return mean" in train and "2,002 steps" in train
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert "wrote" not in stdout  # --quiet


def test_stats_save_stores_statistics_with_the_dataset(point_mass, tmp_path, capsys):
    out = tmp_path / "saved"
    shutil.copytree(point_mass, out)
    code, _, stderr = _run(capsys, ["stats", str(out), "--save", "--quiet"])
    assert code == 0, stderr
    from rlds_hub.inspection import saved_statistics, statistics

    saved = saved_statistics(out)
    assert saved["splits"]["train"] == json.loads(json.dumps(statistics(out)))
