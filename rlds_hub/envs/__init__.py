"""Demo tasks and their policies: ``make_env``, ``list_envs``, ``make_policy``, ``list_policies``;
and :class:`EnvironmentWrapper`, the base of every forwarding ``dm_env`` wrapper.

Importing this package is cheap: dm_control and Gymnasium load when an env of theirs is made.
No TensorFlow here.
"""

from __future__ import annotations

from rlds_hub.envs.experts import EXPERTS
from rlds_hub.envs.policies import Policy, RandomPolicy, list_policies, make_policy
from rlds_hub.envs.registry import (
    EnvUnavailableError,
    canonical_env_name,
    env_label,
    list_envs,
    make_env,
)
from rlds_hub.envs.wrapper import EnvironmentWrapper

__all__ = [
    "EXPERTS",
    "EnvUnavailableError",
    "EnvironmentWrapper",
    "Policy",
    "RandomPolicy",
    "canonical_env_name",
    "env_label",
    "list_envs",
    "list_policies",
    "make_env",
    "make_policy",
]
