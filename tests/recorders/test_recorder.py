"""Recorder semantics: RLDS alignment, metadata, appending, and bad input."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from dm_env import specs

from rlds_hub.format.specs import SpecError
from rlds_hub.inspection.validate import validate
from rlds_hub.recorders import GymnasiumEnv, Recorder, RecordingError
from rlds_hub.storage.writer import SpecMismatchError
from rlds_hub.testing import CounterEnv, RandomSpecEnv, read_episodes_with_tfds


def counting_env(length=3, terminate=True, obs_shape=(2,), obs_spec_shape=(2,)):
    """Observation = step count; reward = 10 * step; terminates or truncates after `length`.
    Setting ``env.obs_shape`` changes the observations' shape (not the spec's)."""
    env = CounterEnv(
        lengths=(length,),
        terminate=(terminate,),
        observation=lambda episode, t: np.full(env.obs_shape, t, np.float32),
        observation_spec=specs.Array(obs_spec_shape, np.float32, "obs"),
        reward=lambda episode, t: 10.0 * t,
        action_spec=specs.BoundedArray((1,), np.int64, 0, 5, "action"),
    )
    env.obs_shape = obs_shape
    return env


def _run(recorder, episodes=1, action=None):
    for _ in range(episodes):
        timestep = recorder.reset()
        t = 0
        while not timestep.last():
            timestep = recorder.step(np.array([t % 5]) if action is None else action)
            t += 1


@pytest.mark.parametrize("length", [1, 3])
@pytest.mark.parametrize("terminate", [True, False])
def test_sar_alignment_and_flags(tmp_path, length, terminate):
    with Recorder(counting_env(length, terminate), tmp_path / "ds") as recorder:
        _run(recorder)
    (episode,) = read_episodes_with_tfds(str(tmp_path / "ds"))
    steps = episode["steps"]
    assert len(steps) == length + 1  # N transitions -> N + 1 steps
    for t, step in enumerate(steps):
        assert step["observation"].tolist() == [t, t]
        assert step["is_first"] == (t == 0)
        assert step["is_last"] == (t == length)
        if t < length:
            assert step["action"].tolist() == [t % 5]  # a_t taken from o_t
            assert step["reward"] == 10.0 * (t + 1)  # r_t followed a_t
            expected_discount = 0.0 if terminate and t == length - 1 else 1.0
            assert step["discount"] == expected_discount
            assert not step["is_terminal"]
        else:  # last step: final observation, zero-filled action/reward/discount
            assert step["action"].tolist() == [0]
            assert step["reward"] == 0 and step["discount"] == 0
            assert step["is_terminal"] == terminate
    assert validate(tmp_path / "ds").ok


def test_step_and_episode_metadata(tmp_path):
    def step_fn(timestep, action, env):
        return {"t": env.t, "label": f"step{env.t}", "action_copy": action}

    def episode_fn(timestep, action, env):
        return {"length": env.t, "name": "demo"}

    env = counting_env(3, True)
    # envlogger calls step_fn at reset too, with action None, which is no storable value
    with (
        pytest.raises(SpecError, match="step_fn is also called at reset"),
        Recorder(counting_env(3), tmp_path / "bad", step_fn=step_fn) as recorder,
    ):
        _run(recorder)

    def step_fn2(timestep, action, env):
        return None if action is None else {"t": env.t, "label": f"step{env.t}"}

    with Recorder(env, tmp_path / "ds2", step_fn=step_fn2, episode_fn=episode_fn) as recorder:
        _run(recorder, episodes=2)
    episodes = read_episodes_with_tfds(str(tmp_path / "ds2"))
    assert len(episodes) == 2
    for episode in episodes:
        steps = episode["steps"]
        # step metadata describes the transition (aligned with a_t), zero-filled on the last
        assert [int(s["t"]) for s in steps] == [1, 2, 3, 0]
        assert [s["label"] for s in steps] == [b"step1", b"step2", b"step3", b""]
        assert int(episode["length"]) == 3 and episode["name"] == b"demo"
    builder = tfds.builder_from_directory(str(tmp_path / "ds2"))
    assert "step_metadata" in builder.info.metadata["specs"]


def test_dataset_metadata_is_readable_with_plain_tfds(tmp_path):
    with Recorder(
        counting_env(),
        tmp_path / "ds",
        env_name="counting",
        policy_name="scripted",
        seed=7,
        metadata={"operator": "alice"},
    ) as recorder:
        _run(recorder)
    metadata = tfds.builder_from_directory(str(tmp_path / "ds")).info.metadata
    assert metadata["env_name"] == "counting"
    assert metadata["policy"] == "scripted" and metadata["seed"] == 7
    assert metadata["user"] == {"operator": "alice"}
    assert metadata["rlds_hub_version"] and metadata["created"]
    assert metadata["specs"]["action"]["kind"] == "bounded"
    assert metadata["specs"]["action"]["maximum"] == 5  # bounds as given (broadcastable)


def test_append_resumes_and_refuses_other_specs(tmp_path):
    with Recorder(counting_env(), tmp_path / "ds", policy_name="a") as recorder:
        _run(recorder, episodes=2)
    with Recorder(counting_env(), tmp_path / "ds", policy_name="b") as recorder:
        assert recorder.num_episodes == 2
        _run(recorder, episodes=1)
        assert recorder.num_episodes == 3 and recorder.episodes_recorded == 1
    builder = tfds.builder_from_directory(str(tmp_path / "ds"))
    assert builder.info.splits["train"].num_examples == 3
    assert [s["policy"] for s in builder.info.metadata["sessions"]] == ["a", "b"]

    wider = counting_env(obs_shape=(3,), obs_spec_shape=(3,))
    with pytest.raises(SpecMismatchError, match=r"observation: float32\[2\] != float32\[3\]"):
        Recorder(wider, tmp_path / "ds", env_name="CounterEnv")  # the default: the class name
    assert tfds.builder_from_directory(str(tmp_path / "ds")).info.splits["train"].num_examples == 3


def test_bad_actions_are_refused_before_the_env_steps(tmp_path):
    env = counting_env(5)
    with Recorder(env, tmp_path / "ds") as recorder:
        _run(recorder)  # one completed episode
        recorder.reset()
        stepped = env.stepped
        with pytest.raises(SpecError, match=r"action: dtype float64 does not match .* int64"):
            recorder.step(np.array([1.0]))
        with pytest.raises(SpecError, match=r"action: shape \(2,\) does not match"):
            recorder.step(np.array([1, 2]))
        with pytest.raises(SpecError, match="cannot be stored as int64 exactly"):
            recorder.step([1.5])
        assert env.stepped == stepped  # the environment never saw them
        recorder.step([2])  # an exact Python value is fine
        recorder.step(np.array([3], np.int32))  # a safe cast is fine
    episodes = read_episodes_with_tfds(str(tmp_path / "ds"))
    assert len(episodes) == 2  # the completed one, and the interrupted one (truncated)
    assert [int(s["action"][0]) for s in episodes[1]["steps"]] == [2, 3, 0]
    assert not episodes[1]["steps"][-1]["is_terminal"]


def test_env_spec_change_mid_episode_discards_only_that_episode(tmp_path):
    env = counting_env(10)
    with Recorder(env, tmp_path / "ds") as recorder:
        _run(recorder, episodes=2)
        recorder.reset()
        recorder.step(np.array([1]))
        env.obs_shape = (3,)  # the environment changes its observations mid-episode
        with pytest.raises(SpecError, match=r"episode 2, step 1: observation: shape \(3,\)"):
            recorder.step(np.array([1]))
        with pytest.raises(RecordingError, match="call reset"):
            recorder.step(np.array([1]))
        env.obs_shape = (2,)
        _run(recorder, episodes=1)
    assert len(read_episodes_with_tfds(str(tmp_path / "ds"))) == 3


def test_step_order_errors(tmp_path):
    with Recorder(counting_env(1), tmp_path / "ds") as recorder:
        with pytest.raises(RecordingError, match="reset"):
            recorder.step(np.array([0]))
        recorder.reset()
        assert recorder.step(np.array([0])).last()
        with pytest.raises(RecordingError, match="the last episode ended"):
            recorder.step(np.array([0]))
    with pytest.raises(RecordingError, match="closed"):
        recorder.reset()
    with pytest.raises(TypeError, match="GymnasiumEnv"):
        Recorder(object(), tmp_path / "x")


def test_discard_and_unfinished_episodes(tmp_path):
    with Recorder(counting_env(5), tmp_path / "ds") as recorder:
        _run(recorder)
        recorder.reset()
        recorder.step(np.array([1]))
        recorder.discard_episode()  # a failed demonstration: dropped
        recorder.reset()
        recorder.step(np.array([1]))
        recorder.reset()  # interrupted by reset: kept as truncated (1 transition)
        _run(recorder)
        recorder.reset()  # no transition yet when closing: nothing to keep
    lengths = [len(e["steps"]) for e in read_episodes_with_tfds(str(tmp_path / "ds"))]
    assert lengths == [6, 2, 6]
    with Recorder(counting_env(5), tmp_path / "ds2", save_unfinished_episodes=False) as recorder:
        recorder.reset()
        recorder.step(np.array([1]))
    # the dataset exists (created with the recorder), with no episodes
    assert tfds.builder_from_directory(str(tmp_path / "ds2")).info.splits.keys() == set()
    assert not list((tmp_path / "ds2").glob("*.tfrecord-*"))


def test_zero_size_uint32_is_refused_at_construction(tmp_path):
    env = RandomSpecEnv(specs.Array((0,), np.uint32))
    with pytest.raises(SpecError, match="zero-size uint32"):
        Recorder(env, tmp_path / "ds")


def test_gymnasium_terminated_vs_truncated(tmp_path):
    import gymnasium as gym

    class Env(gym.Env):
        observation_space = gym.spaces.Dict(
            {"pos": gym.spaces.Box(-1, 1, (2,), np.float32), "mode": gym.spaces.Discrete(3)}
        )
        action_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.MultiBinary(3)))

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return {"pos": np.zeros(2, np.float32), "mode": 0}, {}

        def step(self, action):
            self.t += 1
            terminated = self.t == 2 and action[0] == 1
            truncated = self.t == 4
            return ({"pos": np.full(2, 0.5, np.float32), "mode": 1}, 1.0, terminated, truncated, {})

    with Recorder(GymnasiumEnv(Env(), seed=0), tmp_path / "ds") as recorder:
        for first in (1, 0):
            timestep = recorder.reset()
            while not timestep.last():
                timestep = recorder.step((np.int64(first), np.array([1, 0, 1], np.int8)))
    episodes = read_episodes_with_tfds(str(tmp_path / "ds"))
    assert [len(e["steps"]) for e in episodes] == [3, 5]
    assert episodes[0]["steps"][-1]["is_terminal"] and episodes[0]["steps"][-2]["discount"] == 0
    assert not episodes[1]["steps"][-1]["is_terminal"]
    assert episodes[1]["steps"][0]["action"]["1"].tolist() == [1, 0, 1]
    assert validate(tmp_path / "ds").ok


def test_riegeli_format_uses_envloggers_own_writer(tmp_path):
    import envlogger

    with Recorder(counting_env(3), tmp_path / "rg", file_format="riegeli") as recorder:
        _run(recorder, episodes=2)
    with envlogger.Reader(str(tmp_path / "rg")) as reader:
        episodes = list(reader.episodes)
        assert [len(e) for e in episodes] == [4, 4]
        assert episodes[0][1].action.tolist() == [0]


def test_riegeli_recordings_count_their_episodes_and_steps(tmp_path):
    """`rlds-hub record --file-format riegeli` reported "recorded 0 episodes (0 steps)"."""
    with Recorder(counting_env(3), tmp_path / "rg", file_format="riegeli") as recorder:
        _run(recorder, episodes=2)
        assert (recorder.episodes_recorded, recorder.steps_recorded) == (2, 8)
