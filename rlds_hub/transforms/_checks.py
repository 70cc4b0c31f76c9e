"""Argument checks shared by the transforms, with errors that name the problem."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rlds_hub.checks import check_gamma, check_positive

__all__ = [
    "check_gamma",
    "check_keys",
    "check_positive",
    "field_paths",
    "guard_missing_keys",
    "missing_key_error",
    "require_dataset",
]


def missing_key_error(key: Any, available: Iterable[Any], where: str = "step") -> ValueError:
    """Builds the error for ``key`` missing from a ``where`` with the ``available`` fields.

    A plain ``ValueError``: AutoGraph keeps that type when the error crosses traced
    ``tf.data`` functions (a subclass would become a ``StagingError``).
    """
    names = sorted(str(name) for name in available)
    return ValueError(f"{where} has no field {key!r}; available fields: {names}")


def check_keys(keys: Iterable[Any], available: Iterable[Any], where: str = "step") -> None:
    """Raises ``ValueError`` for the first of ``keys`` not in ``available``."""
    available = list(available)
    for key in keys:
        if key not in available:
            raise missing_key_error(key, available, where)


def require_dataset(value: Any, what: str = "episodes") -> None:
    """Raises ``TypeError`` unless ``value`` is a ``tf.data.Dataset``, saying what to pass
    instead (a path is the usual mistake: these functions transform tf.data pipelines)."""
    if hasattr(value, "element_spec"):
        return
    if isinstance(value, str | bytes) or hasattr(value, "__fspath__"):
        path = value.decode() if isinstance(value, bytes) else str(value)
        raise TypeError(
            f"rlds_hub.transforms works on tf.data datasets of {what}, not on a path "
            f"({path!r}): load the episodes with rlds_hub.load({path!r}) first, or use "
            f"rlds_hub.data.transitions({path!r}) / rlds_hub.data.windows(...) for fast "
            "NumPy batches read straight from disk"
        )
    raise TypeError(
        f"rlds_hub.transforms works on tf.data datasets of {what}; got "
        f"{type(value).__name__} (load episodes with rlds_hub.load(path))"
    )


def field_paths(element: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Returns the field names of ``element``, nested mappings as ``parent/child`` paths."""
    paths = []
    for name, value in element.items():
        path = f"{prefix}{name}"
        paths.append(path)
        if isinstance(value, Mapping):
            paths.extend(field_paths(value, prefix=f"{path}/"))
    return paths


def guard_missing_keys(fn: Callable[..., Any], where: str = "step") -> Callable[..., Any]:
    """Wraps a per-step function so a missing field fails with the available field names.

    A ``KeyError`` raised while ``fn`` is traced on a mapping that lacks that key (at any
    nesting level) becomes a ``ValueError``; other errors pass through unchanged.
    """

    @functools.wraps(fn)
    def guarded(element: Any, *args: Any) -> Any:
        try:
            return fn(element, *args)
        except KeyError as error:
            key = error.args[0] if error.args else None
            if isinstance(element, Mapping):
                paths = field_paths(element)
                if not any(path.rsplit("/", 1)[-1] == str(key) for path in paths):
                    raise missing_key_error(key, paths, where) from error
            raise

    return guarded
