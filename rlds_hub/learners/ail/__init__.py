"""Adversarial imitation, DAC-style: :class:`AILLearner` (SAC + discriminator updates),
:class:`AILAgent` (the learner in a run, playing recorded episodes), :func:`make_policy`
(the trained actor of a checkpoint). Importing the package is cheap; JAX loads with the
first name used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlds_hub import _lazy

if TYPE_CHECKING:
    from rlds_hub.learners.ail.builder import AILAgent as AILAgent
    from rlds_hub.learners.ail.builder import make_policy as make_policy
    from rlds_hub.learners.ail.builder import policy_params_template as policy_params_template
    from rlds_hub.learners.ail.config import AILConfig as AILConfig
    from rlds_hub.learners.ail.learning import AILLearner as AILLearner

_EXPORTS = {
    "AILAgent": "rlds_hub.learners.ail.builder",
    "AILConfig": "rlds_hub.learners.ail.config",
    "AILLearner": "rlds_hub.learners.ail.learning",
    "make_policy": "rlds_hub.learners.ail.builder",
    "policy_params_template": "rlds_hub.learners.ail.builder",
}
__getattr__, __dir__, __all__ = _lazy.attach(__name__, _EXPORTS)
