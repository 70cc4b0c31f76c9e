"""BC hyperparameters (defaults after Acme's BC agent, changed where measured better)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from rlds_hub.learners.config import RunConfig
from rlds_hub.learners.errors import LearnerError


@dataclasses.dataclass(frozen=True)
class BCConfig(RunConfig):
    """Behavioural cloning.

    Attributes:
      loss: for continuous actions, ``mse`` (regression of the normalised action) or
        ``tanh_gaussian`` (log-likelihood under a tanh-squashed Gaussian; the policy acts
        with its mode). Discrete actions always use cross-entropy.
      hidden_sizes / activation: the policy MLP (3x256 ReLU).
      learning_rate: Adam's step size (Acme's BC default, 1e-4).
      batch_size: transitions per SGD step (split over the local devices).
      steps_per_call: SGD steps per jitted call (``lax.scan``).
      num_steps: SGD steps of the run.
    """

    loss: Literal["mse", "tanh_gaussian"] = "mse"
    hidden_sizes: tuple[int, ...] = (256, 256, 256)
    activation: str = "relu"
    learning_rate: float = 1e-4
    batch_size: int = 256
    steps_per_call: int = 100
    num_steps: int = 20_000
    eval_every: int = 5_000
    checkpoint_every: int = 5_000

    def validate(self) -> None:
        super().validate()
        if self.batch_size < 1 or self.steps_per_call < 1:
            raise LearnerError("batch_size and steps_per_call must be >= 1")
        if self.learning_rate <= 0:
            raise LearnerError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise LearnerError(f"hidden_sizes must be positive sizes, got {self.hidden_sizes}")
