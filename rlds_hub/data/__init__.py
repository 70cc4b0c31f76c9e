"""Loading RLDS datasets: episodes as ``tf.data``, and fast shuffled batches for learners.

- :func:`load`: the episodes of a dataset (path or name), as plain TFDS returns them, with
  episode selection by index, by predicate and by TFDS split slices.
- :func:`transitions` / :func:`windows`: shuffled batches of (n-step) transitions or
  fixed-length windows, as NumPy, ``tf.data`` or JAX arrays on device.
- :class:`InMemorySampler`: a dataset held on the accelerator, sampled there.
- :func:`episode_table`, :func:`select_episodes`, :func:`statistics`: what the episodes
  hold, without loading them.
"""

from __future__ import annotations

import importlib
from typing import Any

from rlds_hub.data.loading import Selection, data_dirs, load, resolve, select
from rlds_hub.data.pipeline import NEXT_OBSERVATION, BatchLoader, transitions, windows

_LAZY = {
    "InMemorySampler": "rlds_hub.data.sampler",
    "episode_table": "rlds_hub.data.episodes",
    "select_episodes": "rlds_hub.data.episodes",
    "statistics": "rlds_hub.data.stats",
    "format_statistics": "rlds_hub.data.stats",
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
    "episode_table",
    "format_statistics",
    "load",
    "resolve",
    "select",
    "select_episodes",
    "statistics",
    "transitions",
    "windows",
]
