"""`rlds-hub train` end to end: JSON-line metrics, checkpoints, a browsable RLDS dataset of
evaluation episodes, the learning curve, --resume (and its refusals), and
`rlds-hub record --policy checkpoint:DIR`."""

import json
import shutil

import numpy as np
import pytest

from rlds_hub.cli import main
from rlds_hub.learners import load_policy
from rlds_hub.learners.errors import CheckpointError, SpecMismatchError
from rlds_hub.learners.testing import record_episodes

ENV = "dm_control/point_mass-easy"


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return record_episodes(tmp_path_factory.mktemp("cli") / "pm", ENV, episodes=3, seed=0)


@pytest.mark.slow
def test_train_writes_a_complete_run_and_resumes(demos, tmp_path, capsys):
    out = tmp_path / "run"
    config = tmp_path / "bc.json"
    config.write_text(
        json.dumps(
            {
                "eval_every": 200,
                "eval_episodes": 1,
                "log_every": 100,
                "checkpoint_every": 200,
                "steps_per_call": 50,
            }
        )
    )
    args = [
        "train",
        "bc",
        "--dataset",
        demos,
        "--env",
        ENV,
        "--out",
        str(out),
        "--seed",
        "3",
        "--config",
        str(config),
        "--quiet",
    ]
    assert main([*args, "--steps", "400"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["step"] for r in lines if r["kind"] == "eval"] == [200, 400]
    assert [r["step"] for r in lines if r["kind"] == "train"] == [100, 200, 300, 400]
    for name in ("run.json", "metrics.jsonl", "learning_curve.png", "checkpoints"):
        assert (out / name).exists(), name
    from rlds_hub.data import episode_table

    table = episode_table(str(out / "evaluation"))
    assert len(table) == 2 and {r["metadata"]["learner_step"] for r in table} == {200, 400}

    assert main([*args, "--steps", "400"]) == 2  # the run exists: --resume or another --out
    assert "already holds a training run" in capsys.readouterr().err
    assert main([*args, "--steps", "600", "--resume"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [200, 400, 600]
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"learning_rate": 0.01}))
    assert (
        main(
            [
                "train",
                "bc",
                "--dataset",
                demos,
                "--env",
                ENV,
                "--out",
                str(out),
                "--seed",
                "3",
                "--config",
                str(other),
                "--resume",
                "--quiet",
            ]
        )
        == 2
    )
    assert "config learning_rate: 0.0001 in the run, 0.01 now" in capsys.readouterr().err

    assert (
        main(
            [
                "record",
                "--env",
                ENV,
                "--policy",
                f"checkpoint:{out}",
                "--episodes",
                "1",
                "--out",
                str(tmp_path / "played"),
                "--quiet",
            ]
        )
        == 0
    )
    assert len(episode_table(str(tmp_path / "played"))) == 1


@pytest.mark.slow
def test_same_seed_same_run_on_one_device_and_across_a_resume(demos, tmp_path):
    from rlds_hub.learners.run import train

    def run(name, steps, resume=False):
        train(
            "bc",
            dataset=demos,
            env=ENV,
            out=tmp_path / name,
            seed=5,
            steps=steps,
            config={"eval_episodes": 0},
            resume=resume,
            progress=False,
            echo=lambda line: None,
        )
        return np.asarray(load_policy(tmp_path / name)._act(np.ones((1, 4), np.float32)))

    straight = run("a", 300)
    np.testing.assert_array_equal(straight, run("b", 300))
    run("c", 200)
    np.testing.assert_array_equal(straight, run("c", 300, resume=True))
    # a run stopped before its first checkpoint starts over when resumed
    run("d", 200)
    shutil.rmtree(tmp_path / "d" / "checkpoints")
    np.testing.assert_array_equal(straight, run("d", 300, resume=True))


@pytest.mark.slow
def test_load_policy_refuses_what_does_not_fit(demos, tmp_path):
    from rlds_hub.envs import make_env
    from rlds_hub.learners.run import train

    with pytest.raises(CheckpointError, match="not a training run directory"):
        load_policy(tmp_path)
    train(
        "bc",
        dataset=demos,
        env=ENV,
        out=tmp_path / "run",
        steps=100,
        config={"eval_episodes": 0, "steps_per_call": 50},
        progress=False,
        echo=lambda line: None,
    )
    with pytest.raises(SpecMismatchError, match="observation/position"):
        load_policy(tmp_path / "run", env=make_env("dm_control/cartpole-swingup", seed=0))
    policy = load_policy(tmp_path / "run", env=make_env(ENV, seed=0))
    env = make_env(ENV, seed=1)
    action = policy(env.reset())
    assert action.dtype == env.action_spec().dtype and action.shape == (2,)
    assert np.all(np.abs(action) <= 1.0)
    cartpole = make_env("dm_control/cartpole-swingup", seed=0)
    with pytest.raises(SpecMismatchError, match="has shape"):
        policy(cartpole.reset())
    # Another env with the same specs: resuming the run there is refused.
    with pytest.raises(CheckpointError, match="env: 'dm_control/point_mass-easy' in the run"):
        train(
            "bc",
            dataset=demos,
            env="dm_control/point_mass-hard",
            out=tmp_path / "run",
            steps=200,
            config={"eval_episodes": 0, "steps_per_call": 50},
            resume=True,
            progress=False,
            echo=lambda line: None,
        )
    # A checkpoint that does not fit the network run.json describes.
    run_json = tmp_path / "run" / "run.json"
    run = json.loads(run_json.read_text())
    run["config"]["hidden_sizes"] = [16]
    run_json.write_text(json.dumps(run))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_policy(tmp_path / "run")


def test_unknown_algorithm_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "gail", "--dataset", "x", "--env", ENV, "--out", "y"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'gail'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_written_before_an_option_existed_resumes_at_its_default(demos, tmp_path):
    """run.json without a later-added option: resumable when the option is at its default,
    refused (naming it) when it is not."""
    from rlds_hub.learners import train

    out = tmp_path / "run"
    options = {"eval_episodes": 0, "steps_per_call": 50, "checkpoint_every": 50}
    quiet = {"progress": False, "echo": lambda line: None}
    train(
        "bc",
        dataset=demos,
        env=ENV,
        out=str(out),
        seed=0,
        config={**options, "num_steps": 50},
        **quiet,
    )
    run = json.loads((out / "run.json").read_text())
    del run["config"]["activation"]  # as if written before the option existed
    (out / "run.json").write_text(json.dumps(run))
    with pytest.raises(CheckpointError, match="config activation: 'relu' in the run, 'tanh' now"):
        train(
            "bc",
            dataset=demos,
            env=ENV,
            out=str(out),
            seed=0,
            config={**options, "num_steps": 100, "activation": "tanh"},
            resume=True,
            **quiet,
        )
    result = train(
        "bc",
        dataset=demos,
        env=ENV,
        out=str(out),
        seed=0,
        config={**options, "num_steps": 100},
        resume=True,
        **quiet,
    )
    assert result.steps == 100
