"""Offline and imitation learners on RLDS datasets, in JAX (flax + optax), no TensorFlow.

- ``bc``: behavioural cloning (MSE, tanh-Gaussian likelihood, or cross-entropy);
- ``ail``: adversarial imitation, DAC-style (SAC driving online interaction, a discriminator
  with gradient penalty, GAIL / AIRL / FAIRL rewards, absorbing states);
- ``poir``: BC with a return-to-distribution planner (an ensemble dynamics model, the
  distance to the expert's states, MPPI with the BC policy as proposal).

Entry points: :func:`train` (what ``rlds-hub train`` runs), :func:`load_policy` (a trained
policy with the :class:`rlds_hub.envs.Policy` protocol), and each learner's ``*Learner``
class for your own loop, fed from a dataset, an ``InMemorySampler`` or any iterable of
batches. The learners are registered in :data:`ALGORITHMS` (``learners/algorithm.py``: the
``Agent`` protocol the run drives, and each learner's ``Algorithm`` record). Importing this
package is cheap; JAX loads with the first learner used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlds_hub import _lazy

if TYPE_CHECKING:
    from rlds_hub.learners.ail.config import AILConfig as AILConfig
    from rlds_hub.learners.ail.learning import AILLearner as AILLearner
    from rlds_hub.learners.algorithm import ALGORITHMS as ALGORITHMS
    from rlds_hub.learners.algorithm import Agent as Agent
    from rlds_hub.learners.algorithm import Algorithm as Algorithm
    from rlds_hub.learners.bc.config import BCConfig as BCConfig
    from rlds_hub.learners.bc.learning import BCLearner as BCLearner
    from rlds_hub.learners.errors import (
        CheckpointError as CheckpointError,
    )
    from rlds_hub.learners.errors import (
        DataError as DataError,
    )
    from rlds_hub.learners.errors import (
        LearnerError as LearnerError,
    )
    from rlds_hub.learners.errors import (
        SpecMismatchError as SpecMismatchError,
    )
    from rlds_hub.learners.inputs import load_transitions as load_transitions
    from rlds_hub.learners.learned_policy import LearnedPolicy as LearnedPolicy
    from rlds_hub.learners.normalization import Normalizer as Normalizer
    from rlds_hub.learners.parallel import DataParallel as DataParallel
    from rlds_hub.learners.poir.config import POIRConfig as POIRConfig
    from rlds_hub.learners.poir.learning import POIRLearner as POIRLearner
    from rlds_hub.learners.policy import load_policy as load_policy
    from rlds_hub.learners.run import RunResult as RunResult
    from rlds_hub.learners.run import train as train
    from rlds_hub.learners.run_setup import Setup as Setup
    from rlds_hub.learners.task import TaskSpec as TaskSpec

_EXPORTS = {
    "ALGORITHMS": "rlds_hub.learners.algorithm",
    "Agent": "rlds_hub.learners.algorithm",
    "Algorithm": "rlds_hub.learners.algorithm",
    "Setup": "rlds_hub.learners.run_setup",
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
__getattr__, __dir__, __all__ = _lazy.attach(__name__, _EXPORTS)
