"""rlds_hub.testing: the record() helper and the shared fake environments do what the tests
that use them rely on."""

import numpy as np
import pytest
from dm_env import specs

from rlds_hub.storage import iter_episodes, open_dataset, select
from rlds_hub.testing import CounterEnv, FailingEnv, nested_env, record


def _episodes(path):
    return list(iter_episodes(select(open_dataset(path), "train")))


def test_record_records_the_episodes_and_actions_asked_for(tmp_path):
    env = CounterEnv(lengths=(2, 4), terminate=(True, False), reward=lambda e, t: 10.0 * e + t)
    assert record(env, tmp_path / "ds", episodes=3, policy=np.float32(0.5)) is env
    episodes = _episodes(tmp_path / "ds")
    assert [len(e["steps"]["reward"]) for e in episodes] == [3, 5, 3]  # transitions + 1
    assert [bool(e["steps"]["is_terminal"][-1]) for e in episodes] == [True, False, True]
    assert episodes[1]["steps"]["reward"].tolist() == [11.0, 12.0, 13.0, 14.0, 0.0]
    assert episodes[1]["steps"]["observation"][:, 0].tolist() == [0, 1, 2, 3, 4]
    assert episodes[0]["steps"]["action"][:-1].tolist() == [0.5, 0.5]


def test_record_calls_a_policy_and_cuts_episodes_at_max_steps(tmp_path):
    env = CounterEnv(lengths=(10,))
    record(env, tmp_path / "ds", episodes=2, max_steps=4, policy=lambda ts: np.float32(-ts[3][0]))
    (first, second) = _episodes(tmp_path / "ds")
    assert len(second["steps"]["reward"]) == 5  # 4 transitions, then cut
    assert first["steps"]["action"][:-1].tolist() == [0.0, -1.0, -2.0, -3.0]


def test_record_default_policy_is_zeros_of_a_nested_action_spec(tmp_path):
    env = nested_env(lengths=(2,))
    record(env, tmp_path / "ds", episodes=1)
    assert env.actions[0][0].dtype == np.float32 and not np.any(env.actions[0])


def test_a_policy_name_needs_the_env_name(tmp_path):
    with pytest.raises(ValueError, match="pass env_name"):
        record(CounterEnv(), tmp_path / "ds", policy="random")


def test_failing_env_fails_where_it_is_told_and_not_before():
    env = FailingEnv(CounterEnv(lengths=(5,)), at_step=3, error=RuntimeError("boom"))
    env.reset()
    env.step(np.float32(0))
    env.step(np.float32(0))
    with pytest.raises(RuntimeError, match="boom"):
        env.step(np.float32(0))
    at_reset = FailingEnv(CounterEnv(), at_reset=1)
    at_reset.reset()
    with pytest.raises(RuntimeError, match="simulator failed"):
        at_reset.reset()
    assert at_reset.observation_spec() == specs.Array((1,), np.float32)
