"""POIR, BC with a return-to-distribution planner: :class:`POIRLearner` (BC, the dynamics
ensemble), :class:`POIRAgent` (offline training, then online fine-tuning, in a run),
:class:`POIRPolicy` (BC in distribution, the planner out of it), :func:`make_policy` (the
policy of a checkpoint). Importing the package is cheap; JAX loads with the first name
used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlds_hub import _lazy

if TYPE_CHECKING:
    from rlds_hub.learners.poir.acting import POIRPolicy as POIRPolicy
    from rlds_hub.learners.poir.builder import POIRAgent as POIRAgent
    from rlds_hub.learners.poir.builder import make_policy as make_policy
    from rlds_hub.learners.poir.builder import policy_params_template as policy_params_template
    from rlds_hub.learners.poir.config import POIRConfig as POIRConfig
    from rlds_hub.learners.poir.learning import POIRLearner as POIRLearner

_EXPORTS = {
    "POIRAgent": "rlds_hub.learners.poir.builder",
    "POIRConfig": "rlds_hub.learners.poir.config",
    "POIRLearner": "rlds_hub.learners.poir.learning",
    "POIRPolicy": "rlds_hub.learners.poir.acting",
    "make_policy": "rlds_hub.learners.poir.builder",
    "policy_params_template": "rlds_hub.learners.poir.builder",
}
__getattr__, __dir__, __all__ = _lazy.attach(__name__, _EXPORTS)
