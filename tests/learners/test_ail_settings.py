"""AIL's discriminator entropy bonus (Acme's DAC setting) and the benchmark that compares
AIL settings on validation seeds (benchmarks.ail_settings)."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import ail_settings
from rlds_hub.learners.ail import losses
from rlds_hub.learners.ail.config import AILConfig
from rlds_hub.learners.ail.learning import AILLearner
from rlds_hub.learners.errors import LearnerError
from rlds_hub.learners.normalization import Normalizer


def test_bernoulli_entropy_from_logits():
    logits = jnp.array([0.0, 2.0, -3.0, 40.0])
    p = np.array([0.5, 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(3.0))])
    expected = -p * np.log(p) - (1 - p) * np.log(1 - p)
    entropy = np.asarray(losses.bernoulli_entropy(logits))
    np.testing.assert_allclose(entropy[:3], expected, rtol=1e-5)
    assert entropy[0] == pytest.approx(math.log(2.0), rel=1e-6)
    assert 0.0 <= entropy[3] < 1e-10  # a confident output: no entropy (and no NaN)


def test_entropy_bonus_is_subtracted_from_the_discriminator_loss():
    w = jnp.array([0.5, -0.25])
    expert, agent = jnp.ones((4, 2)), -2.0 * jnp.ones((4, 2))

    def loss(bonus):
        return losses.discriminator_loss(
            lambda x: x @ w,
            expert,
            agent,
            jax.random.PRNGKey(0),
            gradient_penalty=0.0,
            gradient_penalty_target=1.0,
            entropy_bonus=bonus,
        )

    plain, metrics = loss(0.0)
    with_bonus, _ = loss(0.5)
    logits = jnp.concatenate([expert @ w, agent @ w])
    mean_entropy = float(jnp.mean(losses.bernoulli_entropy(logits)))
    assert float(metrics["discriminator_entropy"]) == pytest.approx(mean_entropy, rel=1e-6)
    assert float(with_bonus) == pytest.approx(float(plain) - 0.5 * mean_entropy, rel=1e-6)


@pytest.mark.slow
def test_learner_applies_the_configured_entropy_bonus(toy_task):
    # Separable expert and agent actions: without the bonus the discriminator grows
    # confident (its output entropy falls); a large bonus keeps it near D = 0.5.
    task = toy_task
    rng = np.random.default_rng(0)

    def rows(action_sign):
        obs = rng.normal(size=(20, 32, 2)).astype(np.float32)
        return {
            "observation": obs,
            "absorbing": np.zeros((20, 32), np.float32),
            "action": (action_sign * (0.5 + rng.random((20, 32, 1)))).astype(np.float32),
            "next_observation": obs,
            "next_absorbing": np.zeros((20, 32), np.float32),
            "discount": np.ones((20, 32), np.float32),
        }

    batches = [{"agent": rows(-1.0), "expert": rows(1.0)} for _ in range(3)]
    entropies = {}
    for bonus in (0.0, 5.0):
        config = AILConfig(
            actor_hidden_sizes=(16,),
            critic_hidden_sizes=(16,),
            discriminator_hidden_sizes=(16,),
            discriminator_learning_rate=1e-2,
            gradient_penalty=0.0,
            discriminator_entropy=bonus,
            batch_size=32,
        )
        learner = AILLearner(task, config, Normalizer.identity(2), seed=0)
        for batch in batches:
            metrics = learner.step(batch)
        entropies[bonus] = float(metrics["discriminator_entropy"])
    # Measured: 0.04 without the bonus, 0.65 with it.
    assert entropies[5.0] > 0.6  # near log 2 = 0.69
    assert entropies[0.0] < entropies[5.0] - 0.3


def test_negative_entropy_bonus_is_refused():
    with pytest.raises(LearnerError, match="discriminator_entropy must be >= 0"):
        AILConfig(discriminator_entropy=-1e-3).validate()


def test_settings_parse_json_values_and_refuse_bad_pairs():
    assert ail_settings.parse_settings(
        ["spectral_norm=true", "discriminator_learning_rate=1e-5", "x=[64]", "reward=airl"]
    ) == {
        "spectral_norm": True,
        "discriminator_learning_rate": 1e-5,
        "x": [64],
        "reward": "airl",
    }
    with pytest.raises(SystemExit, match="key=value"):
        ail_settings.parse_settings(["spectral_norm"])
    with pytest.raises(SystemExit, match="unknown variant 'nope'"):
        ail_settings.variant_settings("nope", [])
    assert ail_settings.variant_settings("previous", ["spectral_norm=true"]) == {
        **ail_settings.VARIANTS["previous"],
        "spectral_norm": True,
    }
    for settings in ail_settings.VARIANTS.values():  # every named variant is a valid config
        AILConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})


def _fake_run(path, steps_done, returns):
    path.mkdir(parents=True)
    run = {
        "algorithm": "ail",
        "config": {"num_steps": 100},
        "eval_seed": 1_000_000_001,
        "references": {"seed": 1_000_000_001, "expert": 110.0, "random": 10.0},
    }
    (path / "run.json").write_text(json.dumps(run))
    lines = [
        {"step": 50, "kind": "eval", "returns": [0.0, 0.0], "normalized_return": -0.1},
        {"step": steps_done, "kind": "eval", "returns": returns, "normalized_return": 0.0},
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_final_validation_normalises_the_last_evaluation(tmp_path):
    _fake_run(tmp_path / "done", 100, [60.0, 110.0])
    result = ail_settings.final_validation(str(tmp_path / "done"))
    assert result["step"] == 100 and result["seed"] == 1_000_000_001
    assert result["normalized"] == pytest.approx([0.5, 1.0])
    _fake_run(tmp_path / "unfinished", 90, [60.0, 110.0])
    assert ail_settings.final_validation(str(tmp_path / "unfinished")) is None
    # An unfinished run compares at an evaluation step it reached.
    early = ail_settings.final_validation(str(tmp_path / "unfinished"), step=50)
    assert early["step"] == 50 and early["normalized"] == pytest.approx([-0.1, -0.1])
    assert early["curve"] == [(50, -0.1)]
    assert ail_settings.final_validation(str(tmp_path / "missing")) is None
    assert ail_settings.first_step_at([(10, 0.2), (20, 0.85), (30, 0.9)]) == 20
    assert ail_settings.first_step_at([(10, 0.2)]) is None


def test_compare_pairs_each_variant_with_the_defaults(tmp_path):
    _fake_run(tmp_path / "ail-point-mass" / "seed0", 100, [60.0, 60.0])
    _fake_run(tmp_path / "ail-settings" / "previous" / "seed0", 100, [110.0, 110.0])
    rows = {row["variant"]: row for row in ail_settings.compare(str(tmp_path), [0, 1])}
    assert set(rows) == {"defaults", "previous"}
    assert rows["previous"]["seeds"] == [0] and rows["previous"]["paired_seeds"] == [0]
    assert rows["previous"]["difference"].startswith("0.50 [0.50, 0.50]")
    assert "difference" not in rows["defaults"]


def test_a_run_written_before_the_entropy_bonus_existed_is_read_without_it():
    """``discriminator_entropy`` now defaults to 1e-3; a ``run.json`` that predates the
    option trained with 0 and must be loaded and resumed as such, not at today's default."""
    from rlds_hub.learners import config as config_lib

    saved = config_lib.to_json(AILConfig(discriminator_learning_rate=3e-4))
    del saved["discriminator_entropy"]
    assert AILConfig().discriminator_entropy == 1e-3
    assert config_lib.from_saved(AILConfig, saved).discriminator_entropy == 0.0
    assert config_lib.saved_defaults(AILConfig)["discriminator_entropy"] == 0.0
    # A run that has the key keeps its own value.
    saved["discriminator_entropy"] = 1e-3
    assert config_lib.from_saved(AILConfig, saved).discriminator_entropy == 1e-3
