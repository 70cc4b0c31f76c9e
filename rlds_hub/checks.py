"""Argument checks shared by the loaders, the transforms and the learners, with errors that
name the problem."""

from __future__ import annotations

from typing import Any


def check_positive(name: str, value: Any) -> None:
    """Raises ``ValueError`` unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_gamma(gamma: float) -> None:
    """Raises ``ValueError`` unless ``0 <= gamma <= 1``."""
    if not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
