"""`rlds-hub stats`."""

import json

import numpy as np

from rlds_hub.cli import main
from rlds_hub.testing import CounterEnv, record


def test_stats_command(tmp_path, capsys):
    from dm_env import specs

    env = CounterEnv(  # observations and rewards: the step count
        lengths=(4, 2),
        observation=lambda episode, t: np.full(3, t, np.float32),
        observation_spec=specs.Array((3,), np.float32),
        reward=lambda episode, t: float(t),
        action_spec=specs.BoundedArray((2,), np.float32, -1.0, 1.0),
    )
    record(env, tmp_path / "ds", episodes=2)
    assert main(["stats", str(tmp_path / "ds"), "--quiet"]) == 0
    assert "2 episodes" in capsys.readouterr().out
    assert main(["stats", str(tmp_path / "ds"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_transitions"] == 6
    assert result["returns"]["max"] == 10.0  # 1 + 2 + 3 + 4
    assert main(["stats", str(tmp_path / "missing")]) == 2
