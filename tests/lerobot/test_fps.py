"""The frame rate of an export to LeRobot without ``--fps``: the recorder stores the
environment's control rate in ``metadata.json`` (``fps``), the export takes it (or a
converted LeRobot dataset's ``source.fps``), and says ``--fps`` when there is none."""

from __future__ import annotations

import json

import pytest

from rlds_hub.beam.jobs.convert import convert
from rlds_hub.beam.jobs.export import export
from rlds_hub.envs import make_env
from rlds_hub.recorders.recorder import control_rate
from rlds_hub.storage import open_dataset
from rlds_hub.storage.writer import SpecMismatchError
from rlds_hub.testing import record
from rlds_hub.testing.envs import FramesEnv

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class RatedFramesEnv(FramesEnv):
    """FramesEnv with a dm_control-style ``control_timestep()`` (seconds per step)."""

    def __init__(self, timestep: float, lengths: tuple[int, ...] = (3, 2)):
        super().__init__(lengths)
        self.timestep = timestep

    def control_timestep(self) -> float:
        return self.timestep


def _info_fps(root) -> int:
    return json.loads((root / "meta" / "info.json").read_text())["fps"]


@pytest.mark.parametrize(
    ("name", "rate"),
    [
        ("dm_control/point_mass-easy", 50),  # control_timestep 0.02 s
        ("dm_control/walker-walk", 40),  # 0.025 s
        ("Pendulum-v1", 20),  # dt 0.05 s (its render_fps is 30: dt wins)
        ("CartPole-v1", 50),  # no dt: render_fps
    ],
)
def test_control_rate_of_dm_control_and_gymnasium_envs(name, rate):
    env = make_env(name, seed=0)
    assert control_rate(env) == rate and isinstance(control_rate(env), int)


def test_control_rate_is_none_when_the_env_does_not_say():
    assert control_rate(FramesEnv()) is None
    assert control_rate(RatedFramesEnv(0.08)) == 12.5


@pytest.mark.slow
def test_export_takes_the_recorded_control_rate(tmp_path):
    source = tmp_path / "point_mass"
    record("dm_control/point_mass-easy", source, episodes=2, max_steps=3)
    assert open_dataset(str(source)).dataset_metadata.extra["fps"] == 50
    out = tmp_path / "lerobot"
    export(source, out, format="lerobot", video_codec="none")
    assert _info_fps(out) == 50
    assert json.loads((out / "export.json").read_text())["fps"] == 50


@pytest.mark.slow
def test_given_fps_wins_over_the_recorded_rate(tmp_path):
    source = tmp_path / "rated"
    record(RatedFramesEnv(0.04), source, episodes=2)
    assert open_dataset(str(source)).dataset_metadata.extra["fps"] == 25
    export(source, tmp_path / "recorded", format="lerobot", video_codec="none")
    export(source, tmp_path / "given", format="lerobot", video_codec="none", fps=7)
    assert (_info_fps(tmp_path / "recorded"), _info_fps(tmp_path / "given")) == (25, 7)


def test_without_a_rate_the_export_asks_for_fps(tmp_path):
    source, out = tmp_path / "frames", tmp_path / "lerobot"
    record(FramesEnv(lengths=(3, 2)), source, episodes=2)
    assert "fps" not in open_dataset(str(source)).dataset_metadata.extra
    with pytest.raises(ValueError, match="give the frame rate with --fps"):
        export(source, out, format="lerobot", video_codec="none")
    assert not out.exists()


@pytest.mark.slow
def test_a_rate_that_is_not_whole_asks_for_fps(tmp_path):
    source, out = tmp_path / "rated", tmp_path / "lerobot"
    record(RatedFramesEnv(0.08), source, episodes=2)
    with pytest.raises(ValueError, match=r"fps \(the control rate\) is 12.5.*--fps"):
        export(source, out, format="lerobot", video_codec="none")
    assert not out.exists()
    export(source, out, format="lerobot", video_codec="none", fps=12)
    assert _info_fps(out) == 12


def test_appending_at_another_control_rate_is_refused(tmp_path):
    source = tmp_path / "rated"
    record(RatedFramesEnv(0.04), source, episodes=1)
    record(RatedFramesEnv(0.04), source, episodes=1)  # the same rate: appended
    with pytest.raises(SpecMismatchError, match="fps: the dataset was recorded at 25"):
        record(RatedFramesEnv(0.05), source, episodes=1)
    assert open_dataset(str(source)).split("train").num_episodes == 2


@pytest.mark.slow
def test_a_dataset_converted_from_lerobot_exports_back_at_its_fps(tmp_path):
    source = tmp_path / "frames"
    record(FramesEnv(lengths=(3, 2)), source, episodes=2)
    export(source, tmp_path / "lerobot", format="lerobot", video_codec="none", fps=7)
    convert(tmp_path / "lerobot", tmp_path / "back", source_format="lerobot")
    export(tmp_path / "back", tmp_path / "again", format="lerobot", video_codec="none")
    assert _info_fps(tmp_path / "again") == 7


@pytest.mark.slow
def test_the_record_job_stores_the_control_rate(tmp_path):
    from rlds_hub.beam.job_values import Run
    from rlds_hub.beam.recording import record_dataset
    from rlds_hub.testing.beam_jobs import FAST

    out = tmp_path / "cartpole"
    record_dataset("gym/CartPole-v1", out, policy="random", episodes=2, run=Run(beam_args=FAST))
    assert open_dataset(str(out)).dataset_metadata.extra["fps"] == 50  # its render_fps
