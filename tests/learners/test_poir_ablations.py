"""benchmarks/poir_ablations.py's summary: each variant against the chosen design on the same
episodes, and a variant not played on every seed reported as not measured (never averaged
over the seeds it happens to have)."""

import pytest

from benchmarks import poir_ablations


def _cell(values):
    return {"normalized": values, "planned_fraction": [0.5] * len(values)}


def test_variants_are_paired_with_the_chosen_design_and_incomplete_ones_are_not_measured():
    results = {
        "chosen": {"noisy_actions": {0: _cell([0.2, 0.4]), 1: _cell([0.6, 0.6])}},
        "knn_cost": {"noisy_actions": {0: _cell([0.1, 0.1]), 1: _cell([0.7, 0.3])}},
        "top_k": {"noisy_actions": {0: _cell([0.9, 0.9])}},  # seed 1 not played yet
    }
    summary = poir_ablations.summarise(results, [0, 1])
    knn = summary["knn_cost"]["noisy_actions"]
    assert knn["interval"]["mean"] == pytest.approx((0.1 + 0.5) / 2)
    # paired per episode: seed 0 (-0.1, -0.3), seed 1 (+0.1, -0.3) -> means -0.2 and -0.1
    assert knn["minus_chosen"]["mean"] == pytest.approx(-0.15)
    assert knn["minus_chosen"]["per_seed"] == pytest.approx([-0.2, -0.1])
    assert "minus_chosen" not in summary["chosen"]["noisy_actions"]
    assert summary["top_k"]["noisy_actions"] == {"not_measured_on_seeds": [1]}


def test_a_stage_other_than_online_or_offline_is_refused():
    assert poir_ablations.run_directory("runs", 2, "online", "noisy_actions").endswith(
        "seed2/poir-online-noisy_actions"
    )
    assert poir_ablations.run_directory("runs", 2, "offline", "noisy_actions").endswith(
        "seed2/poir"
    )
    with pytest.raises(ValueError, match="stage must be"):
        poir_ablations.run_directory("runs", 2, "tuned", "noisy_actions")


def test_each_retrained_variant_changes_one_valid_config_value():
    from rlds_hub.learners.poir.config import POIRConfig

    chosen = POIRConfig()
    for name, overrides in poir_ablations.RETRAINED.items():
        variant = chosen.replace(**overrides)  # an unknown field raises here
        variant.validate()
        changed = [f for f in overrides if getattr(variant, f) != getattr(chosen, f)]
        assert changed == list(overrides) and len(changed) == 1, name
        assert name in poir_ablations.RETRAINED_DESCRIPTIONS


def test_a_retrained_variant_is_refused_for_a_run_that_was_fine_tuned_online(tmp_path):
    run_dir = tmp_path / "poir"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(
        '{"algorithm": "poir", "config": {"online_steps": 10000, "num_steps": 20000}, '
        '"dataset": "d", "env": "e"}'
    )
    with pytest.raises(ValueError, match="not an offline run"):
        poir_ablations.retrain(str(run_dir), str(tmp_path), "knn_1", 0)
