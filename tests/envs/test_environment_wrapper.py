"""The one forwarding dm_env wrapper (rlds_hub.envs.wrapper.EnvironmentWrapper): it forwards
reset, step, the specs, close and public attributes, never private ones; the Recorder and the
learners' deployment shifts are built on it."""

from __future__ import annotations

from unittest import mock

import dm_env
import numpy as np
import pytest
from dm_env import specs

from rlds_hub.envs.wrapper import EnvironmentWrapper
from rlds_hub.learners.shifts import ActionNoise
from rlds_hub.recorders import Recorder
from rlds_hub.testing import RandomSpecEnv

FORWARDED = ["reset", "observation_spec", "action_spec", "reward_spec", "discount_spec", "close"]


@pytest.fixture
def env() -> mock.Mock:
    env = mock.create_autospec(dm_env.Environment, instance=True)
    env.physics = "the physics"  # a public attribute only this env has (as dm_control's)
    return env


@pytest.mark.parametrize("method", FORWARDED)
def test_each_method_is_forwarded(env, method):
    result = getattr(EnvironmentWrapper(env), method)()
    getattr(env, method).assert_called_once_with()
    if method != "close":  # close returns None
        assert result is getattr(env, method).return_value


def test_step_forwards_the_action(env):
    action = np.ones(2)
    assert EnvironmentWrapper(env).step(action) is env.step.return_value
    env.step.assert_called_once_with(action)


def test_public_attributes_are_forwarded_private_ones_are_not(env):
    wrapper = EnvironmentWrapper(env)
    assert wrapper.physics == "the physics"
    assert wrapper.environment is env
    env._secret = 1
    with pytest.raises(
        AttributeError, match="'EnvironmentWrapper' object has no attribute '_secret'"
    ):
        wrapper._secret  # noqa: B018


def test_a_context_manager_closes_the_wrapped_env(env):
    with EnvironmentWrapper(env):
        pass
    env.close.assert_called_once_with()


def test_it_is_exported_by_the_envs_package():
    import rlds_hub.envs

    assert rlds_hub.envs.EnvironmentWrapper is EnvironmentWrapper


def test_the_recorder_and_the_shifts_forward_through_it(tmp_path):
    spec = specs.Array((3,), np.float64, name="observation")
    inner = RandomSpecEnv(spec)
    noisy = ActionNoise(inner, scale=0.1, seed=0)
    assert isinstance(noisy, EnvironmentWrapper)
    assert noisy.observation_spec() is inner.observation_spec()
    assert noisy.episodes is inner.episodes  # a public attribute of the wrapped env
    with Recorder(noisy, tmp_path / "ds") as recorder:
        assert isinstance(recorder, EnvironmentWrapper)
        assert recorder.environment is noisy
        assert recorder.action_spec() is inner.action_spec()
        assert recorder.episodes is inner.episodes  # forwarded through two wrappers
        recorder.reset()
    assert recorder.episodes_recorded == 0
