"""Loading RLDS datasets: episodes as ``tf.data``, and fast shuffled batches for learners.

- :func:`load`: the episodes of a dataset (path or name), as plain TFDS decodes them, with
  episode selection by TFDS split slice, index, predicate and filters (imports TensorFlow).
- :func:`transitions` / :func:`windows`: shuffled batches of (n-step) transitions or
  fixed-length windows, as NumPy, ``tf.data`` or JAX arrays on device (NumPy and JAX need
  no TensorFlow).
- :class:`InMemorySampler`: a dataset held on the accelerator, sampled there (JAX).
- :func:`episode_table`, :func:`select_episodes`, :func:`select`: what the episodes hold
  and which to read, without loading them (from :mod:`rlds_hub.storage`).

Importing this package does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

from rlds_hub.data.loading import load
from rlds_hub.data.pipeline import NEXT_OBSERVATION, BatchLoader, transitions, windows
from rlds_hub.storage.episodes import dataset_layout, episode_table
from rlds_hub.storage.names import data_dirs, resolve
from rlds_hub.storage.query import select, select_episodes, select_splits
from rlds_hub.storage.selection import Selection

_LAZY = {
    "InMemorySampler": "rlds_hub.data.sampler",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlds_hub.data' has no attribute {name!r}")


__all__ = [
    "NEXT_OBSERVATION",
    "BatchLoader",
    "InMemorySampler",
    "Selection",
    "data_dirs",
    "dataset_layout",
    "episode_table",
    "load",
    "resolve",
    "select",
    "select_episodes",
    "select_splits",
    "transitions",
    "windows",
]
