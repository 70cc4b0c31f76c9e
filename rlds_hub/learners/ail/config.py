"""AIL hyperparameters: DAC (Kostrikov et al., 2019) with SAC, and the recommendations of
"What Matters for Adversarial Imitation Learning?" (Orsini et al., 2021) where they differ;
changes measured on the benchmarks are noted on each field."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from rlds_hub.learners.config import RunConfig
from rlds_hub.learners.errors import LearnerError


@dataclasses.dataclass(frozen=True)
class AILConfig(RunConfig):
    """Adversarial imitation, DAC-style: SAC trained on rewards from a discriminator.

    The budget ``num_steps`` counts environment steps. Every ``steps_per_call``
    environment steps, as many updates (each: one discriminator step, one critic, actor
    and temperature step) run in one jitted ``lax.scan``, once the replay holds
    ``initial_random_steps`` steps of the uniform random policy.

    Attributes:
      reward: ``gail`` (−log(1−D), the default), ``airl`` (log D − log(1−D)) or ``fairl``
        (−h·e^h with h the logit): computed from the current discriminator whenever a
        batch is sampled, never stored.
      discriminator_input: ``state_action`` (s, a) or ``state_next_state`` (s, s').
      gradient_penalty / gradient_penalty_target: the penalty ``λ (‖∇D(x̂)‖ − target)²`` on
        interpolates x̂ of expert and agent inputs (WGAN-GP style; 10 and 1).
      spectral_norm: spectral normalisation of the discriminator's layers.
      discriminator_entropy: weight of a bonus on the entropy of the discriminator's
        Bernoulli output (subtracted from its loss; 0 = none). The default, 1e-3, and the
        discriminator's learning rate of 1e-5 are Acme DAC's: chosen over 0 and 3e-4 on
        validation seeds (docs/benchmarks.md, "AIL defaults on validation seeds"). Runs
        written before the option existed trained with 0 and are read so.
      absorbing: DAC's absorbing states after true terminations (truncations bootstrap).
      initial_temperature / target_entropy: SAC's entropy temperature (learned; the
        target defaults to −|A|).
      training_env_seed: the environment seed of a fresh run's training episodes; None
        (default): one of the online training range that no demonstration was recorded
        with (:func:`rlds_hub.learners.seeds.online_seed`). Give the demonstrations' seed
        to start from exactly their start states.
    """

    rl: Literal["sac"] = "sac"
    reward: Literal["gail", "airl", "fairl"] = "gail"
    discriminator_input: Literal["state_action", "state_next_state"] = "state_action"
    gradient_penalty: float = 10.0
    gradient_penalty_target: float = 1.0
    spectral_norm: bool = False
    discriminator_entropy: float = 1e-3
    absorbing: bool = True
    actor_hidden_sizes: tuple[int, ...] = (256, 256)
    critic_hidden_sizes: tuple[int, ...] = (256, 256)
    discriminator_hidden_sizes: tuple[int, ...] = (256, 256)
    actor_learning_rate: float = 3e-4
    critic_learning_rate: float = 3e-4
    temperature_learning_rate: float = 3e-4
    discriminator_learning_rate: float = 1e-5
    discount: float = 0.99
    tau: float = 0.005
    initial_temperature: float = 0.1
    target_entropy: float | None = None
    batch_size: int = 256
    replay_size: int = 1_000_000
    initial_random_steps: int = 2_000
    steps_per_call: int = 50
    num_steps: int = 100_000
    eval_every: int = 10_000
    checkpoint_every: int = 20_000
    log_every: int = 5_000
    training_env_seed: int | None = None

    @classmethod
    def values_before_options(cls) -> dict[str, Any]:
        """``discriminator_entropy`` was added with the default 0 before the default became
        1e-3: a run that lacks it trained without the bonus."""
        return {"discriminator_entropy": 0.0}

    def validate(self) -> None:
        super().validate()
        for name in (
            "actor_learning_rate",
            "critic_learning_rate",
            "temperature_learning_rate",
            "discriminator_learning_rate",
            "initial_temperature",
        ):
            if getattr(self, name) <= 0:
                raise LearnerError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.discount <= 1 or not 0 < self.tau <= 1:
            raise LearnerError("discount must be in [0, 1] and tau in (0, 1]")
        if self.batch_size < 1 or self.steps_per_call < 1 or self.replay_size < self.batch_size:
            raise LearnerError("batch_size, steps_per_call >= 1 and replay_size >= batch_size")
        if self.gradient_penalty < 0:
            raise LearnerError("gradient_penalty must be >= 0")
        if self.discriminator_entropy < 0:
            raise LearnerError(
                f"discriminator_entropy must be >= 0 (a bonus weight), got "
                f"{self.discriminator_entropy}"
            )
