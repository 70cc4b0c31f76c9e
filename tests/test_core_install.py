"""``pip install rlds-hub`` without extras, in a fresh virtual environment: pip's resolver
brings no TensorFlow, TFDS, Beam, matplotlib, JAX, service or PyTorch package (not blocked:
absent), and there the recorder records, ``validate`` checks, the reader reads and the NumPy
loaders load; the core commands of the CLI run and the others name the extra they need."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# The checkout's files a build sees (pyproject.toml decides which packages are installed).
SOURCES = ("pyproject.toml", "README.md", "rlds_hub", "pipelines", "builders")
# Distributions that only extras may bring.
OPTIONAL = (
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-datasets",
    "tf-keras",
    "keras",
    "apache-beam",
    "matplotlib",
    "jax",
    "jaxlib",
    "flax",
    "fastapi",
    "sqlalchemy",
    "torch",
    "dm-control",
    "mujoco",
    "gymnasium",
    "pyarrow",
)

SCENARIO = """
import importlib.util, sys
import numpy as np
from dm_env import specs

for name in ("tensorflow", "tensorflow_datasets", "apache_beam", "matplotlib", "jax"):
    assert importlib.util.find_spec(name) is None, name + " is installed"
from rlds_hub import data, inspection, storage
from rlds_hub.recorders import Recorder
from rlds_hub.testing import RandomSpecEnv

path, logs = sys.argv[1], sys.argv[2]
spec = {"position": specs.Array((2,), np.float64), "count": specs.Array((), np.int32)}
env = RandomSpecEnv(spec, episode_lengths=(4, 6), terminate=(True, False))
with Recorder(env, path, env_name="random", policy_name="zeros", seed=0) as recorder:
    for _ in range(3):
        timestep = recorder.reset()
        while not timestep.last():
            timestep = recorder.step(np.zeros(2, np.float32))
report = inspection.validate(path)
assert report.ok, inspection.format_report(report)
dataset = storage.open_dataset(path)
episodes = list(storage.iter_episodes(storage.select(dataset, "train")))
assert [len(e["steps"]["reward"]) for e in episodes] == [5, 7, 5]
first = env.episodes[0][1].observation["position"]
assert episodes[0]["steps"]["observation"]["position"].dtype == np.float64
assert np.array_equal(episodes[0]["steps"]["observation"]["position"][1], first)
batches = list(data.transitions(path, batch_size=4, seed=0))
assert sum(len(b["reward"]) for b in batches) == 4 + 6 + 4
windows = next(iter(data.windows(path, size=3, batch_size=2)))
assert windows["mask"].shape == (2, 3)
stats = inspection.statistics(path)
assert stats["num_transitions"] == 14

assert "unicode_" not in np.__dict__  # nothing patched NumPy so far
with Recorder(env, logs, file_format="riegeli") as recorder:  # envlogger's own writer
    timestep = recorder.reset()
    while not timestep.last():
        timestep = recorder.step(np.zeros(2, np.float32))
print("ok")
"""


def _copy_sources(target: Path) -> None:
    target.mkdir()
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(source, target / name)


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Path:
    """The bin directory of a fresh virtual environment with ``pip install rlds-hub``."""
    root = tmp_path_factory.mktemp("core-install")
    _copy_sources(root / "src")  # pip builds in place: keep the build out of the repository
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(root / "src")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return venv / "bin"


def _run(core: Path, *command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return subprocess.run(
        [str(core / command[0]), *command[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_core_install_brings_no_optional_package(core, tmp_path):
    result = _run(core, "python", "-m", "pip", "list", "--format=json", cwd=tmp_path)
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(result.stdout)}
    assert "rlds-hub" in installed and "numpy" in installed and "envlogger" in installed
    assert installed.isdisjoint(OPTIONAL), sorted(installed & set(OPTIONAL))


def test_the_install_holds_rlds_hub_only(core, tmp_path):
    """The jobs are rlds_hub.pipelines; the checkout's pipelines/ and builders/ folders are
    not installed as generic top-level packages."""
    probe = (
        "import importlib.util as u; "
        "print([n for n in ('pipelines', 'builders', 'rlds_hub.pipelines') if u.find_spec(n)])"
    )
    result = _run(core, "python", "-c", probe, cwd=tmp_path)
    assert result.stdout.strip() == "['rlds_hub.pipelines']", result.stdout + result.stderr


@pytest.fixture(scope="module")
def recorded(core, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A directory where the core recorded ``ds`` (and ``logs``), with how the script ended."""
    work = tmp_path_factory.mktemp("core-work")
    result = _run(core, "python", "-W", "ignore", "-c", SCENARIO, "ds", "logs", cwd=work)
    return work, result


def test_the_core_records_validates_reads_and_loads(core, recorded):
    work, result = recorded
    assert result.stdout.strip() == "ok", result.stderr[-3000:]
    for command in (["info", "ds"], ["stats", "ds"], ["validate", "ds"]):
        result = _run(core, "rlds-hub", *command, cwd=work)
        assert result.returncode == 0, (command, result.stderr[-3000:])


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (["reshard", "--input", "ds", "--output", "out"], "beam"),
        (["info", "ds", "--plot", "out.png"], "plots"),
        (["serve", "--root", "."], "server"),
        (
            ["train", "bc", "--dataset", "ds", "--env", "gym/Pendulum-v1", "--out", "run"],
            "learners",
        ),
        (
            ["record", "--env", "dm_control/point_mass-easy", "--policy", "random", "--out", "out"],
            "envs",
        ),
    ],
)
def test_the_commands_that_need_an_extra_name_it(core, recorded, command, extra):
    work, _ = recorded
    result = _run(core, "rlds-hub", *command, cwd=work)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"pip install 'rlds-hub[{extra}]'" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not (work / "out").exists() and not (work / "run").exists()
