"""tf.data transformations for RLDS datasets: a maintained ``rlds.transformations``.

Code written against ``rlds.transformations`` (rlds 0.1.8) switches by changing the import
to ``rlds_hub.transforms``: names, signatures and semantics are the same (the reverb-based
``pattern_map`` family is not provided). On top of that, :func:`episode_transitions` and
:func:`episode_windows` are vectorised per-episode kernels for learners, and
:func:`transitions` / :func:`windows` apply them to a dataset of episodes.

They need TensorFlow (``pip install 'rlds-hub[tf]'``); importing this package without it
raises a :class:`~rlds_hub.extras.MissingExtraError` that says so.
"""

from rlds_hub.extras import require

require("tensorflow", "tf", "rlds_hub.transforms")

from rlds_hub.transforms.alignment import AlignmentType, add_alignment_to_step, shift_keys
from rlds_hub.transforms.dataset_ops import (
    concat_if_terminal,
    concatenate,
    truncate_after_condition,
)
from rlds_hub.transforms.flexible_batch import BATCH_AUTO_TUNE, batch
from rlds_hub.transforms.learning import (
    episode_transitions,
    episode_windows,
    steps_to_batch,
    transition_indices,
    transitions,
    window_indices,
    windows,
)
from rlds_hub.transforms.nested_ops import (
    apply_nested_steps,
    episode_length,
    final_step,
    map_nested_steps,
    map_steps,
    sum_dataset,
    sum_nested_steps,
)
from rlds_hub.transforms.shape_ops import uniform_from_spec, zero_dataset_like, zeros_from_spec
from rlds_hub.transforms.stats import mean_and_std, sar_fields_mask

__all__ = [
    "BATCH_AUTO_TUNE",
    "AlignmentType",
    "add_alignment_to_step",
    "apply_nested_steps",
    "batch",
    "concat_if_terminal",
    "concatenate",
    "episode_length",
    "episode_transitions",
    "episode_windows",
    "final_step",
    "map_nested_steps",
    "map_steps",
    "mean_and_std",
    "sar_fields_mask",
    "shift_keys",
    "steps_to_batch",
    "sum_dataset",
    "sum_nested_steps",
    "transition_indices",
    "transitions",
    "truncate_after_condition",
    "uniform_from_spec",
    "window_indices",
    "windows",
    "zero_dataset_like",
    "zeros_from_spec",
]
