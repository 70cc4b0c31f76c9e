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
