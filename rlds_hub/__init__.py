"""rlds_hub: record, load, transform, process and serve RLDS datasets.

Importing ``rlds_hub`` is cheap: every subpackage loads on first use, and only
``rlds_hub.load`` (tf.data) and ``rlds_hub.transforms`` import TensorFlow, so JAX-only code
(``rlds_hub.learners``, the NumPy loaders) never pulls it in.
"""

from __future__ import annotations

import importlib
from typing import Any

from rlds_hub._version import __version__

_LAZY_ATTRS = {
    "load": ("rlds_hub.data", "load"),
    "open_dataset": ("rlds_hub.storage", "open_dataset"),
    "statistics": ("rlds_hub.inspection", "statistics"),
    "Recorder": ("rlds_hub.recorders", "Recorder"),
    "GymnasiumEnv": ("rlds_hub.recorders", "GymnasiumEnv"),
}
_LAZY_MODULES = {
    "beam",
    "data",
    "envs",
    "format",
    "inspection",
    "learners",
    "recorders",
    "server",
    "rlds_types",
    "storage",
    "transforms",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRS:
        module, attr = _LAZY_ATTRS[name]
        return getattr(importlib.import_module(module), attr)
    if name in _LAZY_MODULES:
        return importlib.import_module(f"rlds_hub.{name}")
    raise AttributeError(f"module 'rlds_hub' has no attribute {name!r}")


__all__ = ["GymnasiumEnv", "Recorder", "__version__", "load", "open_dataset", "statistics"]
