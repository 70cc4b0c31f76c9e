"""The evaluation protocol: disjoint seed ranges (checked on fresh and resumed runs),
bootstrap intervals, stale stored statistics, and POIR's trust threshold compiled once."""

import itertools
import json
import logging

import jax
import numpy as np
import pytest

from rlds_hub.learners import confidence, seeds

POINT_MASS = "dm_control/point_mass-easy"


def test_the_three_ranges_are_disjoint_and_valid_environment_seeds():
    ranges = [seeds.TRAINING, seeds.VALIDATION, seeds.TEST]
    for a, b in itertools.pairwise(ranges):
        assert a.stop <= b.start
    assert seeds.TEST.stop <= 2**31  # every env (and PRNGKey) takes it
    assert seeds.ONLINE.start >= seeds.TRAINING.start and seeds.ONLINE.stop <= seeds.TRAINING.stop
    for run_seed in (0, 1, 7, 10_000, 499_999_999):
        assert seeds.range_name(seeds.validation_seed(run_seed)) == "validation"
        assert seeds.range_name(seeds.test_seed(run_seed)) == "test"
    with pytest.raises(ValueError, match="run seed"):
        seeds.validation_seed(-1)


def test_online_training_seeds_never_reach_evaluation_seeds_nor_the_demonstrations():
    # The old scheme (seed * 1_000_003 + progress) reached seed 0's evaluation seed 10,000
    # when seed 0 was resumed at 10,000 environment steps.
    evaluation = {seeds.validation_seed(s) for s in range(5)} | {
        seeds.test_seed(s) for s in range(5)
    }
    for run_seed in range(5):
        for position in (0, 1, 9_999, 10_000, 10_001, 2_500_000, 10**12):
            seed = seeds.online_seed(run_seed, position)
            assert seed in seeds.ONLINE and seed not in evaluation
    first = seeds.online_seed(0, 0)
    assert seeds.online_seed(0, 0, avoid=[first, 0]) not in (first, 0)
    assert seeds.online_seed(0, 0) != seeds.online_seed(0, 10_000)  # a fresh one per resume


def test_check_disjoint_names_what_overlaps():
    seeds.check_disjoint([5, "unknown"], trained=[1, None], tuned=[6])
    with pytest.raises(seeds.SeedOverlapError, match=r"trained on: \[5\].*tuned on: \[7\]"):
        seeds.check_disjoint([5, 7], trained=[5], tuned=[7])


def _record(path, episodes, seed=0):
    from rlds_hub.learners.testing import record_episodes

    return record_episodes(path, POINT_MASS, episodes=episodes, seed=seed)


def _session_seeds(path):
    from rlds_hub.storage import open_dataset

    return [s["seed"] for s in open_dataset(str(path)).metadata["sessions"]]


QUICK_AIL = {
    "actor_hidden_sizes": [16],
    "critic_hidden_sizes": [16],
    "discriminator_hidden_sizes": [16],
    "initial_random_steps": 5_000,
    "eval_episodes": 1,
    "eval_every": 1_000,
    "checkpoint_every": 1_000,
    "log_every": 1_000,
    "batch_size": 16,
}


@pytest.mark.slow
def test_ail_evaluates_on_seeds_it_never_trains_on_fresh_and_resumed(tmp_path):
    from rlds_hub.learners import train

    demos = _record(tmp_path / "pm", 1, seed=0)
    out = tmp_path / "run"
    train(
        "ail",
        dataset=demos,
        env=POINT_MASS,
        out=out,
        steps=1_000,
        config=QUICK_AIL,
        progress=False,
        echo=lambda line: None,
    )
    train(
        "ail",
        dataset=demos,
        env=POINT_MASS,
        out=out,
        steps=2_000,
        config=QUICK_AIL,
        resume=True,
        progress=False,
        echo=lambda line: None,
    )
    eval_seed = json.loads((out / "run.json").read_text())["eval_seed"]
    assert seeds.range_name(eval_seed) == "validation"
    trained = _session_seeds(out / "experience")
    assert len(trained) == 2 and len(set(trained)) == 2  # a fresh seed for the resumed part
    assert all(s in seeds.ONLINE for s in trained)
    assert 0 not in trained  # not the demonstrations' start states
    evaluated = set(_session_seeds(out / "evaluation"))
    assert evaluated == {eval_seed}
    assert not evaluated & (set(trained) | {0})


@pytest.mark.slow
def test_a_resumed_run_whose_evaluation_seed_it_trained_on_fails_loudly(tmp_path):
    from rlds_hub.learners import train

    demos = _record(tmp_path / "pm", 1, seed=0)
    out = tmp_path / "run"
    train(
        "ail",
        dataset=demos,
        env=POINT_MASS,
        out=out,
        steps=1_000,
        config=QUICK_AIL,
        progress=False,
        echo=lambda line: None,
    )
    run = json.loads((out / "run.json").read_text())
    run["eval_seed"] = _session_seeds(out / "experience")[0]  # as the old scheme could
    (out / "run.json").write_text(json.dumps(run))
    with pytest.raises(seeds.SeedOverlapError, match="trained on"):
        train(
            "ail",
            dataset=demos,
            env=POINT_MASS,
            out=out,
            steps=2_000,
            config=QUICK_AIL,
            resume=True,
            progress=False,
            echo=lambda line: None,
        )


def test_demonstrations_recorded_on_the_evaluation_seed_are_refused(tmp_path):
    from rlds_hub.learners.run import prepare

    demos = _record(tmp_path / "pm", 1, seed=seeds.validation_seed(3))
    with pytest.raises(seeds.SeedOverlapError, match="trained on"):
        prepare("bc", dataset=demos, env=POINT_MASS, out=tmp_path / "run", seed=3)


@pytest.mark.slow
def test_ail_starts_from_the_demonstrations_seed_only_when_asked(tmp_path):
    from rlds_hub.learners import train

    demos = _record(tmp_path / "pm", 1, seed=0)
    out = tmp_path / "run"
    train(
        "ail",
        dataset=demos,
        env=POINT_MASS,
        out=out,
        steps=1_000,
        config={**QUICK_AIL, "eval_episodes": 0, "training_env_seed": 0},
        progress=False,
        echo=lambda line: None,
    )
    assert _session_seeds(out / "experience") == [0]


# -- bootstrap intervals ---------------------------------------------------------------------


def test_bootstrap_interval_of_seed_means_matches_the_normal_theory():
    rng = np.random.default_rng(0)
    values = rng.normal(1.0, 2.0, size=200)
    interval = confidence.bootstrap_interval([[v] for v in values], resamples=4_000)
    half = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert interval.mean == pytest.approx(values.mean())
    assert interval.low == pytest.approx(values.mean() - half, abs=0.1 * half)
    assert interval.high == pytest.approx(values.mean() + half, abs=0.1 * half)
    assert interval.episodes == 200 and len(interval.per_seed) == 200


def test_bootstrap_interval_counts_both_seed_and_episode_variation():
    # Identical seeds: only episode noise; seeds that differ: a wider interval.
    rng = np.random.default_rng(1)
    same = [list(rng.normal(0.5, 0.2, 10))] * 5
    spread = [
        list(np.asarray(s) + offset)
        for s, offset in zip(same, [-0.4, -0.2, 0.0, 0.2, 0.4], strict=True)
    ]
    narrow = confidence.bootstrap_interval(same)
    wide = confidence.bootstrap_interval(spread)
    assert narrow.low < narrow.mean < narrow.high
    assert (wide.high - wide.low) > 2 * (narrow.high - narrow.low)
    # Episode noise alone (the seeds are identical): resampling each seed's episodes gives
    # the interval its width, about 1.96 * 0.2 / sqrt(50) on either side.
    assert narrow.high - narrow.low > 0.05
    constant = confidence.bootstrap_interval([[0.3, 0.3], [0.3]])
    assert (constant.low, constant.mean, constant.high) == pytest.approx((0.3, 0.3, 0.3))
    assert "per seed 0.30, 0.30; 3 episodes" in constant.format()


def test_paired_differences_and_the_sample_sd():
    gains = confidence.paired_differences([[1.0, 2.0], [3.0]], [[0.5, 2.5], [1.0]])
    assert gains == [[0.5, -0.5], [2.0]]
    with pytest.raises(ValueError, match="same seeds and episodes"):
        confidence.paired_differences([[1.0]], [[1.0, 2.0]])
    assert confidence.sample_sd([1.0, 2.0, 3.0, 4.0]) == pytest.approx(1.2909944)
    assert not confidence.bootstrap_interval([[0.2, -0.3, 0.1]]).excludes_zero
    assert confidence.bootstrap_interval([[0.5, 0.6], [0.4, 0.7]]).excludes_zero


# -- stale stored statistics -----------------------------------------------------------------


def test_stale_statistics_json_is_recomputed_with_a_note(tmp_path):
    from rlds_hub.inspection import save_statistics, statistics
    from rlds_hub.learners.run import prepare

    path = _record(tmp_path / "pm", 2, seed=0)
    save_statistics(path, statistics(path, "train"))
    _record(path, 3, seed=1)  # appended after `stats --save`
    notes = []
    setup = prepare("bc", dataset=path, env=POINT_MASS, out=tmp_path / "run", echo=notes.append)
    assert setup.statistics["num_episodes"] == 5
    fresh = statistics(path, "train")["features"]["observation/position"]["mean"]
    np.testing.assert_allclose(setup.normalizer.mean[:2], fresh, rtol=1e-6)
    (note,) = notes
    assert "stale" in note and "2 episodes" in note and "rlds-hub stats" in note
    # Current statistics are used as stored, without a note.
    save_statistics(path, statistics(path, "train"))
    notes.clear()
    prepare("bc", dataset=path, env=POINT_MASS, out=tmp_path / "run2", echo=notes.append)
    assert notes == []


def test_stale_reason_compares_counts_and_content():
    from rlds_hub.learners.stored_statistics import stale_reason

    rows = [{"num_steps": 3, "return": 1.0}, {"num_steps": 4, "return": 2.0}]
    saved = {"num_episodes": 2, "num_steps": 7, "returns": {"mean": 1.5}}
    assert stale_reason(saved, rows) is None
    assert "episodes" in stale_reason({**saved, "num_episodes": 1}, rows)
    assert "steps" in stale_reason({**saved, "num_steps": 8}, rows)
    assert "return" in stale_reason({**saved, "returns": {"mean": 1.2}}, rows)


# -- POIR's trust threshold ------------------------------------------------------------------


@pytest.mark.slow
def test_poir_trust_threshold_compiles_once(caplog):
    from test_learners_poir import _toy_learner

    _, _, learner = _toy_learner()
    first = learner.trust_threshold()
    caplog.set_level(logging.WARNING, logger="jax")
    with jax.log_compiles(True):
        again = [learner.trust_threshold() for _ in range(3)]
    compiled = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiled == []
    assert again == [first] * 3
