"""`rlds-hub stats`."""

import json

import numpy as np

from rlds_hub.cli import main
from rlds_hub.testing import RandomSpecEnv, record


def test_stats_command(tmp_path, capsys):
    from dm_env import specs

    class Finite(RandomSpecEnv):
        def reset(self):
            return super().reset()._replace(observation=np.zeros(3, np.float32))

        def step(self, action):
            timestep = super().step(action)
            discount = 0.0 if timestep.last() else 1.0
            return timestep._replace(
                observation=np.full(3, self._t, np.float32),
                reward=float(self._t),
                discount=discount,
            )

    env = Finite(specs.Array((3,), np.float32), episode_lengths=[4, 2])
    record(env, tmp_path / "ds", episodes=2)
    assert main(["stats", str(tmp_path / "ds"), "--quiet"]) == 0
    assert "2 episodes" in capsys.readouterr().out
    assert main(["stats", str(tmp_path / "ds"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_transitions"] == 6
    assert result["returns"]["max"] == 10.0  # 1 + 2 + 3 + 4
    assert main(["stats", str(tmp_path / "missing")]) == 2
