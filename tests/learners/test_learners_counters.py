"""What a run's metrics count and call it: BC's SGD updates, AIL's environment steps, POIR's
offline updates and online environment steps each under its own name (issue 15, item 25)."""

import json

import pytest

from rlds_hub.learners.metrics import read_metrics
from rlds_hub.learners.run import train

ENV = "dm_control/point_mass-easy"
QUIET = {"progress": False, "echo": lambda line: None}


@pytest.fixture
def demos(point_mass_demos):
    return point_mass_demos


def _train_lines(run_dir):
    return [r for r in read_metrics(run_dir) if r["kind"] == "train"]


@pytest.mark.slow
def test_a_run_shorter_than_log_every_still_logs_its_loss(demos, tmp_path):
    config = {
        "num_steps": 30,
        "steps_per_call": 10,
        "hidden_sizes": [32],
        "eval_episodes": 0,
        "log_every": 1000,
    }
    train("bc", dataset=demos, env=ENV, out=tmp_path / "run", config=config, **QUIET)
    lines = _train_lines(tmp_path / "run")
    assert len(lines) == 1, lines
    assert lines[0]["step"] == 30 and lines[0]["updates"] == 30
    assert lines[0]["loss"] > 0 and lines[0]["updates_per_s"] > 0


@pytest.mark.slow
def test_ail_names_its_rate_without_a_space_and_counts_updates(demos, tmp_path):
    config = {
        "actor_hidden_sizes": [32],
        "critic_hidden_sizes": [32],
        "discriminator_hidden_sizes": [32],
        "initial_random_steps": 100,
        "eval_episodes": 0,
        "log_every": 100,
        "batch_size": 32,
        "steps_per_call": 50,
    }
    train("ail", dataset=demos, env=ENV, out=tmp_path / "run", steps=300, config=config, **QUIET)
    lines = _train_lines(tmp_path / "run")
    assert lines and all(" " not in key for line in lines for key in line), lines
    assert all("env_steps_per_s" in line for line in lines)
    assert lines[-1]["env_steps"] == 300 and lines[-1]["step"] == 300
    assert 0 < lines[-1]["updates"] <= 300


def test_old_runs_rate_key_is_read_under_its_new_name(tmp_path):
    old = {"step": 500, "time": 1.0, "kind": "train", "critic_loss": 0.5, "env steps_per_s": 9.5}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(old) + "\n")
    (record,) = read_metrics(tmp_path)
    assert record["env_steps_per_s"] == 9.5 and "env steps_per_s" not in record


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_poir_counts_updates_and_env_steps_separately(demos, tmp_path):
    from rlds_hub.data import episode_table

    config = {
        "bc_hidden_sizes": [32],
        "dynamics_hidden_sizes": [32],
        "ensemble_size": 2,
        "num_samples": 8,
        "horizon": 4,
        "push_fractions": [0.5],
        "reference_states": 256,
        "steps_per_call": 50,
        "eval_episodes": 0,
        "log_every": 100,
        "online_steps": 0,
        "finetune_updates_per_episode": 10,
    }
    out = tmp_path / "run"
    train("poir", dataset=demos, env=ENV, out=out, steps=200, config=config, **QUIET)
    offline = _train_lines(out)
    assert [r["updates"] for r in offline] == [100, 200]
    assert all(r["env_steps"] == 0 and "updates_per_s" in r for r in offline)
    # Resumed into the online phase with a smaller offline budget: the 200 updates done stay
    # done, and the online budget is counted in environment steps alone.
    result = train(
        "poir",
        dataset=demos,
        env=ENV,
        out=out,
        steps=100,
        resume=True,
        config={**config, "online_steps": 1000},
        **QUIET,
    )
    online = [r for r in _train_lines(out) if r["env_steps"] > 0]
    assert online[-1]["env_steps"] == 1000 and online[-1]["updates"] == 200
    assert all("env_steps_per_s" in r and "updates_per_s" not in r for r in online)
    assert online[-1]["finetune_updates"] == 10
    (episode,) = episode_table(str(out / "experience"))
    assert episode["num_transitions"] == 1000
    assert episode["metadata"]["env_steps"] == 1000, episode
    assert result.steps == 1200
