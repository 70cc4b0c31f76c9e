"""Messages that name the real problem (issue 15, item 24): the environment passed to
``load_policy``, a run directory that does not exist, non-finite observations and actions
in ``validate``, an infinite return bound, duplicate split names, an output path under a
file, a directory given as a D4RL file, and an environment whose optional dependency is
missing."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from dm_env import specs

from rlds_hub.cli import main
from rlds_hub.testing import CounterEnv, RandomSpecEnv, record


def _record(path, *, nan_observations=(), actions=None, episodes=2):
    """A tiny dataset with NaN observations at ``nan_observations`` (episode, step) and the
    first action element set at ``actions`` {(episode, step): value}."""
    actions = actions or {}
    nan_at = set(nan_observations)

    def observation(episode, t):
        position = np.array([episode, t], np.float64)
        return {"position": np.full(2, np.nan) if (episode, t) in nan_at else position}

    def policy(timestep):
        value = np.zeros(2, np.float32)
        value[0] = actions.get((env.episode, env.t), 0.0)
        return value

    env = CounterEnv(
        (3, 4),
        terminate=(True, False),
        observation=observation,
        observation_spec={"position": specs.Array((2,), np.float64)},
        action_spec=specs.BoundedArray((2,), np.float32, -1.0, 1.0),
    )
    record(env, path, episodes=episodes, policy=policy, name="ds")
    return path


# ---- load_policy ----------------------------------------------------------------------------


def _run_dir(tmp_path, env_name):
    """A run directory with only run.json: enough for load_policy's environment check."""
    from rlds_hub.envs import make_env
    from rlds_hub.format.specs import spec_to_json
    from rlds_hub.learners.task import TaskSpec

    env = make_env(env_name, seed=0)
    task = TaskSpec.from_specs(
        spec_to_json(env.observation_spec()), spec_to_json(env.action_spec()), env_name=env_name
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"algorithm": "bc", "task": task.to_json()}))
    return run


def test_load_policy_names_the_environment_it_was_given(tmp_path):
    from rlds_hub.envs import make_env
    from rlds_hub.learners import load_policy
    from rlds_hub.learners.errors import SpecMismatchError

    run = _run_dir(tmp_path, "dm_control/point_mass-easy")
    with pytest.raises(SpecMismatchError) as caught:
        load_policy(run, env=make_env("dm_control/cartpole-swingup", seed=0))
    message = str(caught.value)
    assert message.startswith(
        "the environment dm_control/cartpole-swingup does not match "
        "the task the policy was trained on (dm_control/point_mass-easy)"
    )
    assert "'dm_control/point_mass-easy' does not match" not in message
    with pytest.raises(SpecMismatchError, match=r"^the environment RandomSpecEnv does not"):
        load_policy(run, env=RandomSpecEnv({"x": specs.Array((2,), np.float64)}))
    import gymnasium

    from rlds_hub.envs.gymnasium_env import GymnasiumEnv

    made_here = GymnasiumEnv(gymnasium.make("Pendulum-v1"))
    with pytest.raises(SpecMismatchError, match=r"^the environment GymnasiumEnv\(Pendulum-v1\) "):
        load_policy(run, env=made_here)


def test_a_missing_run_directory_is_named_as_missing(tmp_path):
    from rlds_hub.learners import load_policy
    from rlds_hub.learners.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"/nope does not exist; pass the --out "):
        load_policy(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match=r"/file is a file, not a training run directory"):
        load_policy(tmp_path / "file")
    with pytest.raises(CheckpointError, match=r"not a training run directory \(no run\.json\)"):
        load_policy(tmp_path)


# ---- validate ----------------------------------------------------------------------------


def test_validate_reports_non_finite_observations_and_actions(tmp_path, capsys):
    from rlds_hub.inspection import validate

    assert not validate(_record(tmp_path / "clean")).problems
    path = _record(
        tmp_path / "bad",
        actions={(0, 1): np.inf, (1, 2): np.nan},
        nan_observations={(1, 0), (1, 3)},
    )
    report = validate(path)
    assert not report.ok
    errors = [str(p) for p in report.errors]
    assert errors == [
        "ERROR: train episode 0 (ds-train.tfrecord-00000, record 0): action has 1 non-finite "
        "value (0 NaN, 1 infinite) in 1 step (first: step 1); no environment takes it",
        "ERROR: train episode 1 (ds-train.tfrecord-00000, record 1): action has 1 non-finite "
        "value (1 NaN, 0 infinite) in 1 step (first: step 2); no environment takes it",
    ]
    warnings = [str(p) for p in report.warnings]
    assert warnings == [
        "WARNING: train episode 1 (ds-train.tfrecord-00000, record 1): observation/position "
        "has 4 non-finite values (4 NaN, 0 infinite) in 2 steps (first: step 0)"
    ]
    assert main(["validate", str(path), "--quiet", "--no-tensorflow"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "2 errors, 1 warning" in out


# ---- selection and job arguments -------------------------------------------------------------


def test_an_infinite_return_bound_gets_a_short_answer():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from rlds_hub.server.api import API_PREFIX
    from rlds_hub.server.api.routes.episodes import router
    from rlds_hub.server.core.errors import install_error_handlers

    app = FastAPI()  # the route's query validation answers before any dataset is read
    install_error_handlers(app)
    app.include_router(router, prefix=API_PREFIX)
    with TestClient(app) as client:
        for value in ("inf", "-inf", "nan", "1e309"):
            response = client.get(f"/api/v1/datasets/x/episodes?min_return={value}")
            assert response.status_code == 422, value
            message = response.json()["error"]["message"]
            assert message == "query.min_return: Input should be a finite number", message


def test_duplicate_split_names_are_named():
    from rlds_hub.beam.selection import parse_fractions

    with pytest.raises(ValueError, match=r"the split 'train' is given twice"):
        parse_fractions("train=0.5,train=0.5")
    assert parse_fractions("train=0.5,test=0.5") == {"train": 0.5, "test": 0.5}


def test_an_output_under_a_file_is_named(tmp_path, capsys):
    path = _record(tmp_path / "in", episodes=1)
    (tmp_path / "afile").write_text("x")
    for output in (tmp_path / "afile" / "out", tmp_path / "afile" / "sub" / "out"):
        args = ["reshard", "--input", str(path), "--output", str(output), "--quiet"]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "Errno" not in err
        assert f"{tmp_path / 'afile'} is a file, so nothing can be written under it" in err


def test_a_directory_given_as_a_d4rl_file(tmp_path, capsys):
    path = _record(tmp_path / "in", episodes=1)
    assert (
        main(
            [
                "convert",
                "--source-format",
                "d4rl",
                "--input",
                str(path),
                "--output",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"rlds-hub convert: error: {path} is a directory; --source-format d4rl "
        "reads one D4RL HDF5 file (e.g. hopper-medium-v2.hdf5)"
    )
    (tmp_path / "text.hdf5").write_text("not hdf5")
    assert (
        main(
            [
                "convert",
                "--source-format",
                "d4rl",
                "--input",
                str(tmp_path / "text.hdf5"),
                "--output",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("text.hdf5 is not an HDF5 file (no HDF5 signature)"), err


# ---- environments --------------------------------------------------------------------------


def test_an_env_whose_optional_dependency_is_missing(monkeypatch, capsys):
    pytest.importorskip("mujoco")
    from rlds_hub.envs import make_env
    from rlds_hub.envs.registry import EnvUnavailableError

    # imageio (gymnasium's MuJoCo envs import it) is missing, whether or not it is installed
    monkeypatch.setitem(sys.modules, "imageio", None)
    for name in [m for m in sys.modules if m.startswith("gymnasium.envs.mujoco")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(EnvUnavailableError) as caught:
        make_env("gym/Hopper-v5")
    assert str(caught.value) == (
        "gym/Hopper-v5 needs the Python package 'imageio', which is not installed here: "
        'pip install imageio (or all of its family\'s: pip install "gymnasium[mujoco]")'
    )
    assert (
        main(
            [
                "record",
                "--env",
                "gym/Hopper-v5",
                "--policy",
                "random",
                "--out",
                "/nonexistent/never",
                "--quiet",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err and "pip install imageio" in err
