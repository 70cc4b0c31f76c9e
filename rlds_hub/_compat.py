"""The one NumPy-2 shim rlds_hub needs, applied only where envlogger writes.

envlogger 1.2 (the last cp311 release) encodes arrays with ``np.unicode_``, which NumPy 2
removed. :func:`patch_numpy_for_envlogger` aliases it to ``np.str_``; the Recorder calls it
before envlogger writes Riegeli logs. Importing rlds_hub changes nothing in NumPy, and reading
envlogger logs does not need the alias (envlogger's decoder does not use the name).
"""

from __future__ import annotations

import numpy as np


def patch_numpy_for_envlogger() -> None:
    """Aliases ``np.unicode_`` to ``np.str_`` if NumPy lacks it (envlogger 1.2's encoder)."""
    if "unicode_" not in np.__dict__:
        np.unicode_ = np.str_  # type: ignore[attr-defined]
