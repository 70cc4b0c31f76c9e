"""Compatibility shims applied once, before any third-party import that needs them."""

from __future__ import annotations

import numpy as np


def patch_numpy_for_envlogger() -> None:
    """envlogger 1.2 refers to ``np.unicode_``, which NumPy 2 removed; alias it to ``np.str_``."""
    if "unicode_" not in np.__dict__:
        np.unicode_ = np.str_  # type: ignore[attr-defined]


patch_numpy_for_envlogger()
