"""A recording process killed with SIGKILL at any moment loses at most the episode in progress."""

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rlds_hub.inspection.validate import validate
from rlds_hub.recorders import Recorder
from rlds_hub.testing import assert_bit_equal, read_episodes_with_tfds

sys.path.insert(0, str(Path(__file__).parent))
import crash_child

CHILD = Path(__file__).parent / "crash_child.py"


def _record_then_kill(data_dir: Path, file_format: str, seed: int, kill_after: int,
                      delay: float) -> int:
    """Starts the child, SIGKILLs it ``delay`` s after it reports ``kill_after`` episodes;
    returns the number of episodes it reported complete."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir), file_format, str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    reported = 0
    deadline = time.monotonic() + 120
    try:
        while reported < kill_after:
            ready, _, _ = select.select([child.stdout], [], [], 5)
            assert time.monotonic() < deadline, "child too slow"
            if not ready:
                assert child.poll() is None, child.stderr.read()
                continue
            line = child.stdout.readline()
            assert line, f"child exited: {child.stderr.read()}"
            reported = int(line.split()[1])
        time.sleep(delay)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    rest = child.stdout.read().split()
    if rest:
        reported = int(rest[-1])
    return reported


def _expected_episodes(seed: int, count: int):
    env = crash_child.make_env(seed)
    policy = crash_child.actions(seed)
    for _ in range(count):
        timestep = env.reset()
        while not timestep.last():
            timestep = env.step(next(policy))
    return env


def _check(data_dir: Path, seed: int, reported: int, file_format: str) -> int:
    builder = tfds.builder_from_directory(str(data_dir))
    listed = builder.info.splits["train"].num_examples
    assert listed in (reported, reported + 1), (listed, reported)
    if file_format == "tfrecord":
        episodes = read_episodes_with_tfds(str(data_dir))
        observations = [[s["observation"] for s in e["steps"]] for e in episodes]
    else:
        source = builder.as_data_source(split="train")
        observations = [[s["observation"] for s in source[i]["steps"]] for i in range(len(source))]
    assert len(observations) == listed
    env = _expected_episodes(seed, listed)
    for index, (read, logged) in enumerate(zip(observations, env.episodes, strict=True)):
        assert len(read) == len(logged), f"episode {index}"
        for t, timestep in enumerate(logged):
            assert_bit_equal(timestep.observation, read[t], f"episode {index} step {t}")
    report = validate(data_dir)
    assert report.ok, [str(p) for p in report.problems]
    assert report.episodes == listed
    return listed


@pytest.mark.parametrize("trial", range(6))
def test_sigkill_at_random_moments_keeps_every_completed_episode(tmp_path, trial):
    rng = random.Random(trial)
    data_dir = tmp_path / "ds"
    reported = _record_then_kill(data_dir, "tfrecord", seed=trial, kill_after=rng.randint(1, 12),
                                 delay=rng.uniform(0, 0.05))
    listed = _check(data_dir, trial, reported, "tfrecord")

    # Resuming appends after the surviving episodes; the result is one valid dataset.
    env = crash_child.make_env(trial)
    policy = crash_child.actions(trial)
    for _ in range(listed):  # replay the env and policy to where the dataset stops
        timestep = env.reset()
        while not timestep.last():
            timestep = env.step(next(policy))
    with Recorder(env, data_dir, max_episodes_per_shard=5) as recorder:
        for _ in range(3):
            timestep = recorder.reset()
            while not timestep.last():
                timestep = recorder.step(next(policy))
    _check(data_dir, trial, listed + 3, "tfrecord")
    leftovers = [p.name for p in data_dir.iterdir() if p.name.startswith(".tmp-")]
    assert not leftovers


def test_sigkill_array_record(tmp_path):
    reported = _record_then_kill(tmp_path / "ds", "array_record", seed=7, kill_after=7,
                                 delay=0.01)
    _check(tmp_path / "ds", 7, reported, "array_record")


def test_unfinished_episode_is_not_listed_after_kill(tmp_path):
    """Killing mid-episode: the dataset lists exactly the completed episodes."""
    reported = _record_then_kill(tmp_path / "ds", "tfrecord", seed=3, kill_after=2, delay=0.0)
    builder = tfds.builder_from_directory(str(tmp_path / "ds"))
    assert builder.info.splits["train"].num_examples in (reported, reported + 1)
    lengths = np.array(builder.info.splits["train"].shard_lengths)
    assert lengths.sum() == builder.info.splits["train"].num_examples
