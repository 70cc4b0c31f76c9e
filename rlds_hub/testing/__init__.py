"""Test support shared by rlds_hub's tests (after Minari's test commons): fake environments
whose every value is known, one :func:`record` helper, bit-exact comparisons, and datasets in
the Open X-Embodiment layout.

The service's helpers (a PostgreSQL server, ``rlds-hub serve`` processes, the service's test
datasets) are the submodules :mod:`rlds_hub.testing.postgres`, :mod:`rlds_hub.testing.service`
and :mod:`rlds_hub.testing.service_data` (they need the ``server`` extra)."""

from rlds_hub.testing.comparisons import assert_bit_equal, read_episodes_with_tfds, stack_steps
from rlds_hub.testing.envs import (
    FRAME,
    NESTED_SPEC,
    CounterEnv,
    FailingEnv,
    FramesEnv,
    nested_env,
)
from rlds_hub.testing.oxe import oxe_episode, write_oxe_dataset
from rlds_hub.testing.random_spec import RandomSpecEnv, random_value
from rlds_hub.testing.recording import record, zeros_like_spec

__all__ = [
    "FRAME",
    "NESTED_SPEC",
    "CounterEnv",
    "FailingEnv",
    "FramesEnv",
    "RandomSpecEnv",
    "assert_bit_equal",
    "nested_env",
    "oxe_episode",
    "random_value",
    "read_episodes_with_tfds",
    "record",
    "stack_steps",
    "write_oxe_dataset",
    "zeros_like_spec",
]
