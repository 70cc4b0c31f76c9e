"""Offline and imitation learners on RLDS datasets, in JAX (flax + optax), no TensorFlow.

- ``bc``: behavioural cloning (MSE, tanh-Gaussian likelihood, or cross-entropy);
- ``ail``: adversarial imitation, DAC-style (SAC driving online interaction, a discriminator
  with gradient penalty, GAIL / AIRL / FAIRL rewards, absorbing states);
- ``poir``: BC with a return-to-distribution planner (an ensemble dynamics model, the
  distance to the expert's states, MPPI with the BC policy as proposal).

Entry points: :func:`train` (what ``rlds-hub train`` runs), :func:`load_policy` (a trained
policy with the :class:`rlds_hub.envs.Policy` protocol), and each learner's ``*Learner``
class for your own loop, fed from a dataset, an ``InMemorySampler`` or any iterable of
batches. Importing this package is cheap; JAX loads with the first learner used.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "load_policy": "rlds_hub.learners.policy",
    "LearnedPolicy": "rlds_hub.learners.learned_policy",
    "train": "rlds_hub.learners.run",
    "RunResult": "rlds_hub.learners.run",
    "TaskSpec": "rlds_hub.learners.task",
    "Normalizer": "rlds_hub.learners.normalization",
    "DataParallel": "rlds_hub.learners.parallel",
    "load_transitions": "rlds_hub.learners.inputs",
    "LearnerError": "rlds_hub.learners.errors",
    "DataError": "rlds_hub.learners.errors",
    "SpecMismatchError": "rlds_hub.learners.errors",
    "CheckpointError": "rlds_hub.learners.errors",
    "BCConfig": "rlds_hub.learners.bc.config",
    "BCLearner": "rlds_hub.learners.bc.learning",
    "AILConfig": "rlds_hub.learners.ail.config",
    "AILLearner": "rlds_hub.learners.ail.learning",
    "POIRConfig": "rlds_hub.learners.poir.config",
    "POIRLearner": "rlds_hub.learners.poir.learning",
}
ALGORITHMS = ("bc", "ail", "poir")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlds_hub.learners' has no attribute {name!r}")


__all__ = ["ALGORITHMS", *sorted(_LAZY)]
