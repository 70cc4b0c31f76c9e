"""The control rate (``fps``) of envlogger Riegeli logs through the convert: a rate rlds_hub's
Recorder stored in a log (or the log's own ``fps`` metadata key) becomes the output's
``metadata.json`` ``fps``, which exports to LeRobot use; logs without one take ``--fps``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlds_hub.beam.jobs.convert import convert
from rlds_hub.beam.jobs.export import export
from rlds_hub.beam.sources import SourceFormatError
from rlds_hub.cli import main
from rlds_hub.storage import open_dataset
from rlds_hub.testing import record
from rlds_hub.testing.beam_jobs import FAST
from rlds_hub.testing.envs import FramesEnv

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class RatedFramesEnv(FramesEnv):
    """FramesEnv with a dm_control-style ``control_timestep()`` (seconds per step)."""

    def __init__(self, timestep: float):
        super().__init__((3, 2))
        self.timestep = timestep

    def control_timestep(self) -> float:
        return self.timestep


def _envlogger_log(directory, metadata=None) -> None:
    """Two episodes logged by envlogger alone (no rlds_hub Recorder)."""
    import envlogger

    from rlds_hub import _compat

    _compat.patch_numpy_for_envlogger()  # envlogger 1.2's encoder on NumPy 2
    env = FramesEnv((3, 2))
    directory.mkdir(parents=True)
    with envlogger.EnvLogger(env, data_directory=str(directory), metadata=metadata) as logged:
        for _ in range(2):
            timestep = logged.reset()
            while not timestep.last():
                timestep = logged.step(np.zeros(1, np.float32))


def _fps(path):
    return open_dataset(str(path)).dataset_metadata.extra.get("fps")


def _info_fps(root) -> int:
    return json.loads((root / "meta" / "info.json").read_text())["fps"]


@pytest.mark.slow
def test_a_riegeli_recording_carries_its_control_rate_to_the_export(tmp_path):
    logs = tmp_path / "logs"
    record(RatedFramesEnv(0.04), logs / "run", episodes=2, file_format="riegeli")
    convert(logs, tmp_path / "rlds", **_run())
    assert _fps(tmp_path / "rlds") == 25
    export(tmp_path / "rlds", tmp_path / "lerobot", format="lerobot", video_codec="none")
    assert _info_fps(tmp_path / "lerobot") == 25  # no --fps needed


@pytest.mark.slow
def test_an_envlogger_log_without_a_rate_takes_fps_from_the_convert(tmp_path):
    _envlogger_log(tmp_path / "logs" / "run")
    convert(tmp_path / "logs", tmp_path / "plain", **_run())
    assert _fps(tmp_path / "plain") is None
    with pytest.raises(ValueError, match="give the frame rate with --fps"):
        export(tmp_path / "plain", tmp_path / "no-rate", format="lerobot", video_codec="none")
    convert(tmp_path / "logs", tmp_path / "rated", fps=15, **_run())
    assert _fps(tmp_path / "rated") == 15
    export(tmp_path / "rated", tmp_path / "lerobot", format="lerobot", video_codec="none")
    assert _info_fps(tmp_path / "lerobot") == 15


def test_an_envlogger_logs_own_fps_key_is_its_rate(tmp_path):
    _envlogger_log(tmp_path / "logs" / "run", metadata={"fps": 30, "robot": "arm"})
    convert(tmp_path / "logs", tmp_path / "rlds", **_run())
    assert _fps(tmp_path / "rlds") == 30


def test_fps_that_disagrees_with_the_logs_rate_is_refused(tmp_path):
    record(RatedFramesEnv(0.04), tmp_path / "logs" / "run", episodes=1, file_format="riegeli")
    with pytest.raises(ValueError, match="--fps 10 disagrees with the envlogger source's own rate"):
        convert(tmp_path / "logs", tmp_path / "rlds", fps=10, **_run())
    assert not (tmp_path / "rlds").exists()
    convert(tmp_path / "logs", tmp_path / "same", fps=25.0, **_run())  # the same rate: kept
    assert _fps(tmp_path / "same") == 25


def test_logs_at_different_rates_are_refused(tmp_path):
    record(RatedFramesEnv(0.04), tmp_path / "logs" / "a", episodes=1, file_format="riegeli")
    record(RatedFramesEnv(0.05), tmp_path / "logs" / "b", episodes=1, file_format="riegeli")
    with pytest.raises(SourceFormatError, match=r"different control rates.*a: 25.*b: 20"):
        convert(tmp_path / "logs", tmp_path / "rlds", **_run())
    assert not (tmp_path / "rlds").exists()


def test_a_bad_fps_in_a_logs_metadata_is_refused(tmp_path):
    _envlogger_log(tmp_path / "logs" / "run", metadata={"fps": "fast"})
    with pytest.raises(SourceFormatError, match="metadata's fps is 'fast', not a positive"):
        convert(tmp_path / "logs", tmp_path / "rlds", **_run())


def test_the_cli_stores_fps_and_refuses_a_bad_one(tmp_path, capsys):
    _envlogger_log(tmp_path / "logs" / "run")
    argv = ["convert", "--input", str(tmp_path / "logs"), "--quiet", *FAST]
    assert main([*argv, "--output", str(tmp_path / "rlds"), "--fps", "12.5"]) == 0
    assert _fps(tmp_path / "rlds") == 12.5
    assert main([*argv, "--output", str(tmp_path / "bad"), "--fps", "0"]) != 0
    assert "--fps must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def _run():
    from rlds_hub.beam.job_values import Run

    return {"run": Run(beam_args=FAST, quiet=True)}
