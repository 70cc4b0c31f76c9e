"""Behavioural cloning: :class:`BCLearner` (the SGD steps), :class:`BCAgent` (the learner in
a run), :func:`make_policy` (the greedy policy of a checkpoint). Importing the package is
cheap; JAX loads with the first name used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlds_hub import _lazy

if TYPE_CHECKING:
    from rlds_hub.learners.bc.builder import BCAgent as BCAgent
    from rlds_hub.learners.bc.builder import make_policy as make_policy
    from rlds_hub.learners.bc.builder import policy_params_template as policy_params_template
    from rlds_hub.learners.bc.config import BCConfig as BCConfig
    from rlds_hub.learners.bc.learning import BCLearner as BCLearner

_EXPORTS = {
    "BCAgent": "rlds_hub.learners.bc.builder",
    "BCConfig": "rlds_hub.learners.bc.config",
    "BCLearner": "rlds_hub.learners.bc.learning",
    "make_policy": "rlds_hub.learners.bc.builder",
    "policy_params_template": "rlds_hub.learners.bc.builder",
}
__getattr__, __dir__, __all__ = _lazy.attach(__name__, _EXPORTS)
