"""The POIR benchmark's comparison arms end to end on a tiny task (issue 17, item 2): POIR's
own BC, and BC fine-tuned with the same online deployment steps — trained on its own
successful rollouts, played on online training seeds and tested on the test seed only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import learners as bench

ENV = "dm_control/point_mass-easy"
SHIFTS = {
    "clean": {},
    "noisy_actions": {"action_noise": 0.3},
    "shifted_start": {"qpos_offset": [[0.05, 0.1], [0.05, 0.1]]},
}
BC = {"hidden_sizes": [32], "steps_per_call": 50, "log_every": 1000}
POIR = {
    "bc_hidden_sizes": [32],
    "dynamics_hidden_sizes": [32],
    "ensemble_size": 2,
    "num_samples": 8,
    "horizon": 4,
    "push_fractions": [0.5],
    "reference_states": 256,
    "steps_per_call": 50,
    "log_every": 1000,
    "finetune_updates_per_episode": 10,
}


def test_success_threshold_is_the_worst_demo_or_the_better_half() -> None:
    assert bench.success_threshold([10.0, 8.0], [9.0, 12.0, 20.0]) == 8.0
    assert bench.success_threshold([10.0, 8.0], [1.0, 2.0, 3.0]) == 2.0  # none reach 8
    with pytest.raises(ValueError, match="needs demonstrations and rollouts"):
        bench.success_threshold([1.0], [])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_poir_benchmark_new_arms_end_to_end(tmp_path: Path) -> None:
    from rlds_hub.learners import seeds
    from rlds_hub.learners.policy import read_run
    from rlds_hub.storage import open_dataset

    run = dict(
        demos=2,
        offline_steps=100,
        online_steps=1000,
        episodes=1,
        env=ENV,
        shifts=SHIFTS,
        bc_config=BC,
        poir_config=POIR,
    )
    (record,) = bench.run_poir([0], str(tmp_path), **run)
    test_seed = seeds.test_seed(0)
    assert record["test_seed"] == test_seed and record["arms"] == bench.POIR_ARMS
    for shift in SHIFTS:
        row = record["shifts"][shift]
        for arm in ("bc", "poir", "poir_bc"):
            assert len(row[f"{arm}_episodes"]) == 1, (shift, arm)
    base = tmp_path / "poir-cartpole" / "seed0"
    # POIR's own BC is the trained POIR run that never plans.
    from rlds_hub.learners.evaluation import run_episodes

    own_bc = bench.poir_own_bc(str(base / "poir"), 0)
    run_episodes(own_bc, ENV, seed=seeds.validation_seed(0), episodes=1)
    assert own_bc.mode == "bc" and own_bc.steps > 0 and own_bc.planned == 0
    for shift in ("noisy_actions", "shifted_start"):
        row = record["shifts"][shift]
        assert len(row["poir_online_episodes"]) == len(row["bc_online_episodes"]) == 1
        assert row["bc_online_test_seed"] == test_seed, "BC + online steps tested off the test seed"
        rollouts = row["bc_online_rollouts"]
        assert rollouts["env_steps"] >= 1000 and rollouts["kept"] >= 1
        assert all(seeds.range_name(s) == "training" for s in rollouts["seeds"])
        # The retrained BC learned from the demonstrations plus the kept rollouts.
        trained_on = open_dataset(read_run(str(base / f"bc-online-{shift}" / "run"))["dataset"])
        assert trained_on.split("train").num_episodes == 2 + rollouts["kept"]
        assert set(rollouts["seeds"]) <= set(trained_on.dataset_metadata.seeds_used)
    # Finished: a rerun is read back from disk, not run again.
    result = base / "result.json"
    written = result.stat().st_mtime_ns
    assert bench.run_poir([0], str(tmp_path), **run) == [json.loads(result.read_text())]
    assert result.stat().st_mtime_ns == written


def _write(out: Path, seed: int, shifts: dict[str, dict[str, list[float]]]) -> None:
    rows = {
        shift: {"expert": 800.0, "random": 10.0, **{f"{k}_episodes": v for k, v in arms.items()}}
        for shift, arms in shifts.items()
    }
    folder = out / "poir-cartpole" / f"seed{seed}"
    folder.mkdir(parents=True)
    record = {"seed": seed, "protocol": "test-seeds", "arms": bench.POIR_ARMS, "shifts": rows}
    (folder / "result.json").write_text(json.dumps(record))


def test_the_report_shows_the_new_columns_and_marks_each_target(tmp_path, capsys) -> None:
    good = [0.9] * 6
    for seed in range(5):
        arms = {"bc": [0.5] * 6, "poir_bc": [0.5] * 6, "poir": [0.6] * 6, "poir_online": good}
        _write(
            tmp_path,
            seed,
            {
                "noisy_actions": {**arms, "bc_online": [0.7] * 6},
                # a positive mean whose interval includes 0: not met
                "shifted_start": {**arms, "bc_online": [[0.1, 1.5, 0.1, 1.5, 0.8][seed]] * 6},
            },
        )
    bench.report(str(tmp_path), None)
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.startswith("| deployment"))
    for column in (
        "POIR's own BC",
        "BC + the same online steps",
        "fine-tuned POIR − BC",
        "fine-tuned POIR − BC with the same online steps",
    ):
        assert f"| {column} |" in header, column
    verdicts = [line for line in text.splitlines() if line.startswith("- ")]
    assert (
        "- noisy_actions: fine-tuned POIR − BC ≥ 0.1, 95% interval's lower bound > 0: **met**"
        in ("\n".join(verdicts))
    )
    same = [v for v in verdicts if "with the same online steps" in v]
    assert "**met**" in same[0] and same[0].startswith("- noisy_actions")
    assert "**not met**" in same[1] and same[1].startswith("- shifted_start")
    assert all("not measured" not in v for v in verdicts)


def test_targets_without_data_are_not_measured(tmp_path, capsys) -> None:
    _write(tmp_path, 0, {"noisy_actions": {"bc": [0.5] * 30, "poir": [0.4] * 30}})
    bench.report(str(tmp_path), None)
    verdicts = [line for line in capsys.readouterr().out.splitlines() if line.startswith("- ")]
    assert any("offline POIR − BC ≥ 0: **not met**" in v for v in verdicts), verdicts
    assert sum("**not measured**" in v for v in verdicts) == 5, verdicts
