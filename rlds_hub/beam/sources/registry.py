"""The source formats the convert job reads: format name -> the module that reads it,
registered by ``rlds_hub/beam/sources/__init__.py`` (one line per format) and imported on
first use. :mod:`rlds_hub.beam.sources.base` dispatches through this table, so it imports
no source module, and a new format is one module plus one ``register`` line.

A source module provides ``detect(path) -> bool`` (is ``path`` in this format?) and
``describe(path, *, source_no=0, **options) -> SourceDescription``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_MODULES: dict[str, str] = {}


def register(name: str, module: str) -> None:
    """Adds the format ``name``, read by ``module`` (a dotted module name). Formats are
    detected in the order they were registered."""
    _MODULES[name] = module


def formats() -> tuple[str, ...]:
    """The registered format names, in registration order."""
    return tuple(_MODULES)


def source_module(name: str) -> ModuleType:
    """The module that reads format ``name`` (imported now if it was not yet)."""
    return importlib.import_module(_MODULES[name])
