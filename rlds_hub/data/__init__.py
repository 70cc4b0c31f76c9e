"""Loading RLDS datasets: episodes as ``tf.data``, and fast shuffled batches for learners.

- :func:`load`: the episodes of a dataset (path or name), as plain TFDS decodes them, with
  episode selection by TFDS split slice, index, predicate and filters (imports TensorFlow).
- :func:`transitions` / :func:`windows` / :func:`steps`: shuffled batches of (n-step)
  transitions, fixed-length windows or single steps (with frame history and action
  chunks), as NumPy, ``tf.data`` or JAX arrays on device (NumPy and JAX need no TensorFlow).
- :class:`InMemorySampler`: a dataset held on the accelerator, sampled there (JAX).
- :func:`episode_table`, :func:`select_episodes`, :func:`select`: what the episodes hold
  and which to read, without loading them (from :mod:`rlds_hub.storage`).

Importing this package does not import TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlds_hub import _lazy
from rlds_hub.data.loading import load as load
from rlds_hub.data.pipeline import NEXT_OBSERVATION as NEXT_OBSERVATION
from rlds_hub.data.pipeline import BatchLoader as BatchLoader
from rlds_hub.data.pipeline import steps as steps
from rlds_hub.data.pipeline import transitions as transitions
from rlds_hub.data.pipeline import windows as windows
from rlds_hub.storage.episodes import dataset_layout as dataset_layout
from rlds_hub.storage.episodes import episode_table as episode_table
from rlds_hub.storage.names import data_dirs as data_dirs
from rlds_hub.storage.names import resolve as resolve
from rlds_hub.storage.query import select as select
from rlds_hub.storage.query import select_episodes as select_episodes
from rlds_hub.storage.query import select_splits as select_splits
from rlds_hub.storage.selection import Selection as Selection

if TYPE_CHECKING:
    from rlds_hub.data.sampler import InMemorySampler as InMemorySampler

_EXPORTS = {
    "InMemorySampler": "rlds_hub.data.sampler",
}
__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    _EXPORTS,
    eager=[
        "NEXT_OBSERVATION",
        "BatchLoader",
        "Selection",
        "data_dirs",
        "dataset_layout",
        "episode_table",
        "load",
        "resolve",
        "select",
        "select_episodes",
        "select_splits",
        "steps",
        "transitions",
        "windows",
    ],
)
