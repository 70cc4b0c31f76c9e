"""Child process for test_crash: records episodes forever, reporting each completed one.

Usage: python crash_child.py DATA_DIR FILE_FORMAT SEED [PAUSE]
Prints "done <n>" (flushed) after the n-th episode's last step returned; with PAUSE (seconds)
it then waits that long before the next episode (a kill then lands between episodes).
"""

import sys
import time

import numpy as np
from dm_env import specs

from rlds_hub.recorders import Recorder
from rlds_hub.testing import RandomSpecEnv, random_value

OBSERVATION_SPEC = {"position": specs.Array((3,), np.float64), "count": specs.Array((), np.int32)}
ACTION_SPEC = specs.BoundedArray((2,), np.float32, -1.0, 1.0)


def make_env(seed: int) -> RandomSpecEnv:
    return RandomSpecEnv(
        OBSERVATION_SPEC,
        ACTION_SPEC,
        episode_lengths=[50, 37, 61],
        terminate=[False, True],
        seed=seed,
    )


def actions(seed: int):
    rng = np.random.default_rng(seed + 1000)
    while True:
        yield random_value(ACTION_SPEC, rng)


def main() -> None:
    data_dir, file_format, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    policy = actions(seed)
    recorder = Recorder(make_env(seed), data_dir, max_episodes_per_shard=5, file_format=file_format)
    episodes = recorder.num_episodes
    while True:
        timestep = recorder.reset()
        while not timestep.last():
            timestep = recorder.step(next(policy))
        episodes += 1
        print(f"done {episodes}", flush=True)
        if pause:
            time.sleep(pause)


if __name__ == "__main__":
    main()
