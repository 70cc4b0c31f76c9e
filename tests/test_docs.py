"""Every ``python``, ``sh`` and ``bash`` block of docs/*.md runs, like the README's (see
tests/doc_blocks.py): each document in a fresh directory holding the small datasets its blocks
name, made by the set-up below, so the documentation cannot rot. NOT_YET lists the documents
whose blocks do not run yet."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from doc_blocks import block_env, blocks, run_blocks

from rlds_hub.testing.service import serving

DOCS = Path(__file__).resolve().parents[1] / "docs"

# What each document's blocks expect to exist before its first block (shell, run in order).
SETUP: dict[str, list[str]] = {
    "loading.md": [  # its `where` example reads an episode metadata field, `operator`
        """python - <<'EOF'
from rlds_hub.testing import record

operator = lambda timestep, action, env: {"operator": "alice"}
record("dm_control/cartpole-swingup", "data/cartpole", episodes=10, policy="expert", episode_fn=operator)
EOF""",
    ],
    "server.md": [  # its Arrow / NPZ example reads episode 3 of point_mass from a server
        """python - <<'EOF'
from rlds_hub.testing import record

record("dm_control/point_mass-easy", "data/point_mass", episodes=4, policy="expert", max_steps=20)
EOF""",
    ],
    "pipelines.md": [  # data/robot (two episodes over 100 steps), envlogger logs in logs/,
        # a Minari dataset in ~/.minari (HOME is the test's directory), a D4RL-style file
        """python - <<'EOF'
import gymnasium as gym, h5py, numpy as np
from minari import DataCollector
from rlds_hub.testing import nested_env, record

record(nested_env(lengths=(120, 30, 150)), "data/robot", episodes=3)
record(nested_env(lengths=(4, 6)), "logs/run", episodes=2, file_format="riegeli")
env = DataCollector(gym.make("CartPole-v1", max_episode_steps=20))
for seed in range(3):
    env.reset(seed=seed)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
env.create_dataset(dataset_id="pen/expert-v0", algorithm_name="random")
rng = np.random.default_rng(0)
with h5py.File("hopper_medium.hdf5", "w") as f:
    f["observations"] = rng.standard_normal((30, 11))
    f["actions"] = rng.uniform(-1, 1, (30, 3)).astype(np.float32)
    f["rewards"] = rng.standard_normal(30).astype(np.float32)
    f["terminals"] = np.arange(30) % 10 == 9
    f["timeouts"] = np.zeros(30, bool)
EOF""",
    ],
}

# Documents whose blocks read ~ (the test's directory is their home).
OWN_HOME = {"pipelines.md"}
# Documents whose blocks talk to `rlds-hub serve --root data` on the default port.
SERVED = {"server.md"}
# Documents whose blocks use the tests' S3 server (rlds_hub.testing.object_store): its endpoint
# and dummy keys are in their environment, and the bucket rlds-hub-docs exists.
OBJECT_STORE = {"loading.md", "pipelines.md", "server.md"}


# Not run yet: documents whose blocks need fixes or set-up still to be written.
NOT_YET: set[str] = set()


def _documents() -> list[str]:
    return sorted(path.name for path in DOCS.glob("*.md") if blocks(path))


def test_docs_have_runnable_blocks():
    assert {"learners.md", "loading.md", "transforms.md"} <= set(_documents())
    assert set(_documents()) >= NOT_YET


@pytest.mark.slow
@pytest.mark.parametrize("document", sorted(set(_documents()) - NOT_YET))
def test_every_doc_block_runs(document: str, tmp_path: Path):
    env = block_env(RLDS_HUB_DATA_DIR=str(tmp_path / "data"))
    if document in OWN_HOME:
        env["HOME"] = str(tmp_path)
    if document in OBJECT_STORE:
        from rlds_hub.testing.object_store import s3_server

        env.update(s3_server().environment())
        s3_server().create_bucket("rlds-hub-docs")
    for line in SETUP.get(document, []):
        subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, check=True)
    if document not in SERVED:
        run_blocks(DOCS / document, tmp_path, env)
        return
    index = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    with serving([tmp_path / "data"], index, port=8765):
        run_blocks(DOCS / document, tmp_path, env)
