"""A recording process killed with SIGKILL at any moment loses at most the episode in progress."""

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

from rlds_hub.inspection.validate import validate
from rlds_hub.recorders import Recorder
from rlds_hub.storage import shards
from rlds_hub.storage.repair import repair
from rlds_hub.testing import assert_bit_equal, read_episodes_with_tfds

sys.path.insert(0, str(Path(__file__).parent))
import crash_child

CHILD = Path(__file__).parent / "crash_child.py"


def _record_then_kill(
    data_dir: Path, file_format: str, seed: int, kill_after: int, delay: float, pause: float = 0.0
) -> int:
    """Starts the child, SIGKILLs it ``delay`` s after it reports ``kill_after`` episodes;
    returns the number of episodes it reported complete. With ``pause`` the child waits
    that long after each episode (so the kill lands between episodes)."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir), file_format, str(seed), str(pause)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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


def _globbed(data_dir: Path) -> int:
    """Records in the files matching the TFDS shard pattern (what Beam or OXE tools read)."""
    return sum(1 for f in data_dir.glob("*.tfrecord-*") for _ in shards.iter_tfrecord(f))


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
    # The child's actions are random bits (lossless recording of every value), so some are
    # NaN or infinite: validate rightly calls that an error of the data, not of the recording.
    errors = [
        p
        for p in report.problems
        if p.severity == "error"
        and not (p.message.startswith("action has") and "non-finite" in p.message)
    ]
    assert not errors, [str(p) for p in errors]
    assert report.episodes == listed
    if file_format == "tfrecord":
        # A kill inside the two system calls that publish an episode (or seal a shard) may
        # leave that episode's file unlisted; never fewer than the listed episodes.
        assert _globbed(data_dir) >= listed
    return listed


# trial 0 keeps a SIGKILL in make test-fast; the other five trials run in make test.
@pytest.mark.parametrize(
    "trial", [0, *(pytest.param(trial, marks=pytest.mark.slow) for trial in range(1, 6))]
)
def test_sigkill_at_random_moments_keeps_every_completed_episode(tmp_path, trial):
    rng = random.Random(trial)
    data_dir = tmp_path / "ds"
    reported = _record_then_kill(
        data_dir, "tfrecord", seed=trial, kill_after=rng.randint(1, 12), delay=rng.uniform(0, 0.05)
    )
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
    assert _globbed(data_dir) == listed + 3  # reopening removed what the kill left


@pytest.mark.slow
def test_a_globbing_reader_sees_each_episode_once_after_a_kill_between_episodes(tmp_path):
    """The shard being filled grows as a hidden .tmp- file: after a kill, files matching the
    TFDS shard pattern hold every listed episode exactly once (no duplicates)."""
    data_dir = tmp_path / "ds"
    reported = _record_then_kill(data_dir, "tfrecord", seed=5, kill_after=8, delay=0.05, pause=1.0)
    listed = _check(data_dir, 5, reported, "tfrecord")
    assert listed == reported == 8
    assert _globbed(data_dir) == listed
    names = sorted(p.name for p in data_dir.iterdir())
    assert [n for n in names if n.startswith(".tmp-")]  # the killed writer's hidden files
    info_bytes = tfds.builder_from_directory(str(data_dir)).info.splits["train"].num_bytes
    shard_bytes = sum(f.stat().st_size for f in data_dir.glob("*.tfrecord-*"))
    assert shard_bytes == info_bytes  # the size a reader sees is the dataset's size


def test_repair_after_kill_removes_leftovers_and_keeps_every_episode(tmp_path):
    data_dir = tmp_path / "ds"
    reported = _record_then_kill(data_dir, "tfrecord", seed=11, kill_after=7, delay=0.0)
    listed = _check(data_dir, 11, reported, "tfrecord")
    result = repair(data_dir)
    assert result.ok, result.problems
    assert not [p.name for p in data_dir.iterdir() if p.name.startswith(".tmp-")]
    assert _check(data_dir, 11, listed, "tfrecord") == listed
    assert _globbed(data_dir) == listed


def test_sigkill_array_record(tmp_path):
    reported = _record_then_kill(tmp_path / "ds", "array_record", seed=7, kill_after=7, delay=0.01)
    _check(tmp_path / "ds", 7, reported, "array_record")


def test_unfinished_episode_is_not_listed_after_kill(tmp_path):
    """Killing mid-episode: the dataset lists exactly the completed episodes."""
    reported = _record_then_kill(tmp_path / "ds", "tfrecord", seed=3, kill_after=2, delay=0.0)
    builder = tfds.builder_from_directory(str(tmp_path / "ds"))
    listed = builder.info.splits["train"].num_examples
    assert listed in (reported, reported + 1)
    episodes = read_episodes_with_tfds(str(tmp_path / "ds"))
    assert len(episodes) == listed  # what is listed is readable, nothing more
    expected = _expected_episodes(3, listed + 1)  # one more: the one being recorded
    assert [len(e["steps"]) for e in episodes] == [len(e) for e in expected.episodes[:listed]]
    assert all(bool(e["steps"][-1]["is_last"]) for e in episodes)  # no partial episode
