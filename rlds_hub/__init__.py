"""rlds_hub: record, load, transform, process and serve RLDS datasets.

Importing ``rlds_hub`` is cheap: every subpackage loads on first use, and only
``rlds_hub.load`` (tf.data) and ``rlds_hub.transforms`` import TensorFlow, so JAX-only code
(``rlds_hub.learners``, the NumPy loaders) never pulls it in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlds_hub import _lazy
from rlds_hub._version import __version__ as __version__

if TYPE_CHECKING:  # the tables' names, for type checkers (`X as X`: an explicit re-export)
    # isort: off
    from rlds_hub import (
        beam as beam,
        data as data,
        envs as envs,
        format as format,
        inspection as inspection,
        learners as learners,
        recorders as recorders,
        rlds_types as rlds_types,
        server as server,
        storage as storage,
        transforms as transforms,
    )

    # isort: on
    from rlds_hub.data import load as load
    from rlds_hub.inspection import statistics as statistics
    from rlds_hub.recorders import GymnasiumEnv as GymnasiumEnv
    from rlds_hub.recorders import Recorder as Recorder
    from rlds_hub.storage import open_dataset as open_dataset

_EXPORTS = {
    "load": "rlds_hub.data",
    "open_dataset": "rlds_hub.storage",
    "statistics": "rlds_hub.inspection",
    "Recorder": "rlds_hub.recorders",
    "GymnasiumEnv": "rlds_hub.recorders",
}
_SUBMODULES = (
    "rlds_hub.beam",
    "rlds_hub.data",
    "rlds_hub.envs",
    "rlds_hub.format",
    "rlds_hub.inspection",
    "rlds_hub.learners",
    "rlds_hub.recorders",
    "rlds_hub.server",
    "rlds_hub.rlds_types",
    "rlds_hub.storage",
    "rlds_hub.transforms",
)
__getattr__, __dir__, __all__ = _lazy.attach(
    __name__, _EXPORTS, submodules=_SUBMODULES, eager=["__version__"]
)
