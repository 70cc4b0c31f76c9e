"""Demo tasks and their policies: ``make_env``, ``list_envs``, ``make_policy``, ``list_policies``.

Importing this package is cheap: dm_control and Gymnasium load when an env of theirs is made.
No TensorFlow here.
"""

from __future__ import annotations

from rlds_hub.envs.experts import EXPERTS
from rlds_hub.envs.policies import Policy, RandomPolicy, list_policies, make_policy
from rlds_hub.envs.registry import canonical_env_name, list_envs, make_env

__all__ = [
    "EXPERTS",
    "Policy",
    "RandomPolicy",
    "canonical_env_name",
    "list_envs",
    "list_policies",
    "make_env",
    "make_policy",
]
