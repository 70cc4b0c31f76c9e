"""Recorders: wrap a dm_env (or Gymnasium) environment and write RLDS datasets.

Neither imports TensorFlow; both load lazily. ``GymnasiumEnv`` lives in
:mod:`rlds_hub.envs` (re-exported here).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Recorder": "rlds_hub.recorders.recorder",
    "RecordingError": "rlds_hub.recorders.recorder",
    "RLDSBackend": "rlds_hub.recorders.backend",
    "OutOfBoundsWarning": "rlds_hub.recorders.backend",
    "GymnasiumEnv": "rlds_hub.envs.gymnasium_env",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlds_hub.recorders' has no attribute {name!r}")


__all__ = sorted(_LAZY)
