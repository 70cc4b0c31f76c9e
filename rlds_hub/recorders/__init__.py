"""Recorders: wrap a dm_env (or Gymnasium) environment and write RLDS datasets.

Neither imports TensorFlow; both load lazily. ``GymnasiumEnv`` lives in
:mod:`rlds_hub.envs` (re-exported here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlds_hub import _lazy

if TYPE_CHECKING:
    from rlds_hub.envs.gymnasium_env import GymnasiumEnv as GymnasiumEnv
    from rlds_hub.recorders.backend import (
        OutOfBoundsWarning as OutOfBoundsWarning,
    )
    from rlds_hub.recorders.backend import (
        RLDSBackend as RLDSBackend,
    )
    from rlds_hub.recorders.options import Provenance as Provenance
    from rlds_hub.recorders.options import WriterOptions as WriterOptions
    from rlds_hub.recorders.recorder import Recorder as Recorder
    from rlds_hub.recorders.recorder import RecordingError as RecordingError

_EXPORTS = {
    "Recorder": "rlds_hub.recorders.recorder",
    "WriterOptions": "rlds_hub.recorders.options",
    "Provenance": "rlds_hub.recorders.options",
    "RecordingError": "rlds_hub.recorders.recorder",
    "RLDSBackend": "rlds_hub.recorders.backend",
    "OutOfBoundsWarning": "rlds_hub.recorders.backend",
    "GymnasiumEnv": "rlds_hub.envs.gymnasium_env",
}
__getattr__, __dir__, __all__ = _lazy.attach(__name__, _EXPORTS)
