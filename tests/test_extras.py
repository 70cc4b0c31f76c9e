"""What needs an extra says which (``pip install 'rlds-hub[tf]'``) when it is missing — the
library's entry points and the CLI's commands — and importing rlds_hub patches nothing in
NumPy. The optional packages are blocked in a child process (``sys.modules[name] = None``);
tests/test_core_install.py checks the same in an environment where they are not installed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rlds_hub.extras import EXTRAS, MissingExtraError, extra_for, require
from rlds_hub.testing import RandomSpecEnv, record


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_extra_for_names_the_extra_of_an_optional_dependency():
    error = extra_for(
        ModuleNotFoundError("No module named 'apache_beam.io'", name="apache_beam.io")
    )
    assert isinstance(error, MissingExtraError) and error.extra == "beam"
    assert "pip install 'rlds-hub[beam]'" in str(error)
    assert extra_for(ModuleNotFoundError("x", name="rlds_hub.storage.nope")) is None
    assert extra_for(ModuleNotFoundError("x", name="numpy")) is None  # core: a real bug
    assert extra_for(ImportError("cannot import name 'x'")) is None


def test_every_extra_named_is_declared_in_pyproject():
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    declared = set(pyproject["project"]["optional-dependencies"])
    assert set(EXTRAS.values()) <= declared
    assert {
        "tf",
        "beam",
        "server",
        "learners",
        "envs",
        "plots",
        "torch",
        "remote",
        "lerobot",
        "all",
    } <= (declared)


def test_require_names_the_extra_and_leaves_real_bugs_alone(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match=r"plotting needs 'matplotlib'.*rlds-hub\[plots\]"):
        require("matplotlib", "plots", "plotting")
    with pytest.raises(ModuleNotFoundError) as raised:
        require("rlds_hub.no_such_module", "beam")
    assert not isinstance(raised.value, MissingExtraError)


BLOCKED = """
import sys
for name in ("tensorflow", "tensorflow_datasets", "apache_beam", "matplotlib", "fastapi",
             "jax"):
    sys.modules[name] = None
import rlds_hub
from rlds_hub import data
from rlds_hub.extras import MissingExtraError

path = sys.argv[1]
checks = {
    "tf": [lambda: rlds_hub.load(path), lambda: __import__("rlds_hub.transforms"),
           lambda: data.transitions(path, batch_size=2).as_tf_dataset(),
           lambda: rlds_hub.open_dataset(path).builder],
    "beam": [lambda: rlds_hub.beam.WriteDataset],
    "plots": [lambda: rlds_hub.inspection.plot_episodes(path, "x.png")],
    "server": [lambda: rlds_hub.server.create_app],
    "jax": [lambda: next(iter(data.transitions(path, batch_size=2).as_jax_iterator())),
            lambda: data.InMemorySampler.from_dataset(path)],
}
for extra, calls in checks.items():
    for call in calls:
        try:
            call()
        except MissingExtraError as e:
            assert f"pip install 'rlds-hub[{extra}]'" in str(e), (extra, str(e))
        else:
            raise AssertionError(f"no error naming [{extra}]")
print("ok")
"""


def _dataset(path) -> str:
    from dm_env import specs

    env = RandomSpecEnv({"position": specs.Array((2,), np.float64)}, episode_lengths=(3,))
    record(env, path, episodes=2, env_name="random")
    return str(path)


def test_library_entry_points_name_their_extra(tmp_path):
    result = _run(BLOCKED, _dataset(tmp_path / "ds"))
    assert result.stdout.strip() == "ok", result.stderr[-3000:]


CLI = """
import sys
sys.modules[sys.argv[1]] = None
from rlds_hub.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    ("blocked", "extra", "command"),
    [
        ("apache_beam", "beam", ["reshard", "--input", "{ds}", "--output", "{tmp}/out"]),
        ("matplotlib", "plots", ["info", "{ds}", "--plot", "{tmp}/x.png"]),
        ("fastapi", "server", ["serve", "--root", "{tmp}"]),
        (
            "jax",
            "learners",
            ["train", "bc", "--dataset", "{ds}", "--env", "gym/Pendulum-v1", "--out", "{tmp}/run"],
        ),
    ],
)
def test_cli_commands_name_their_extra(tmp_path, blocked, extra, command):
    ds = _dataset(tmp_path / "ds")
    argv = [a.format(ds=ds, tmp=tmp_path) for a in command]
    result = _run(CLI, blocked, *argv)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"pip install 'rlds-hub[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


def test_importing_rlds_hub_does_not_patch_numpy():
    code = (
        "import numpy as np\nimport rlds_hub, rlds_hub.storage, rlds_hub.data, "
        "rlds_hub.inspection, rlds_hub.recorders.recorder, rlds_hub.cli\n"
        "import rlds_hub.beam.sources.envlogger_source\n"
        "from rlds_hub.recorders import Recorder\n"
        "print('unicode_' in np.__dict__)"
    )
    result = _run(code)
    assert result.stdout.strip() == "False", result.stderr[-3000:]
