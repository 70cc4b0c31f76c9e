"""User functions named ``module:function`` (or ``path/to/file.py:function``), shipped to the
workers by value.

The function's own module is pickled by value (cloudpickle), so workers of a cluster need
only rlds_hub installed, not the user's module; functions from installed packages are pickled
by reference as usual.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any


class FunctionSpecError(ValueError):
    """A ``module:function`` that cannot be imported or is not callable."""


def load_function(spec: str | Callable[..., Any]) -> Callable[..., Any]:
    """The function ``spec`` names (a callable is returned as is)."""
    if callable(spec):
        return spec
    module_name, sep, attr = str(spec).rpartition(":")
    if not sep or not module_name or not attr:
        raise FunctionSpecError(
            f"{spec!r}: name a function as module:function (e.g. my_package.relabel:fn) or "
            "path/to/file.py:function"
        )
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            path = os.path.abspath(module_name)
            if not os.path.isfile(path):
                raise FunctionSpecError(f"{spec!r}: {path} does not exist")
            name = "rlds_hub_user_" + os.path.splitext(os.path.basename(path))[0]
            loader = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(loader)
            sys.modules[name] = module
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except FunctionSpecError:
        raise
    except Exception as e:
        raise FunctionSpecError(
            f"{spec!r}: cannot import {module_name} ({type(e).__name__}: {e})"
        ) from e
    function = getattr(module, attr, None)
    if function is None:
        raise FunctionSpecError(f"{spec!r}: {module_name} has no attribute {attr!r}")
    if not callable(function):
        raise FunctionSpecError(f"{spec!r}: {attr} is a {type(function).__name__}, not callable")
    return function


class ShippedFunction:
    """A picklable wrapper carrying a function by value to the workers."""

    def __init__(self, function: Callable[..., Any]):
        import cloudpickle

        module = sys.modules.get(getattr(function, "__module__", "") or "")
        by_value = module is not None and not _installed(module)
        if by_value:
            cloudpickle.register_pickle_by_value(module)
        try:
            self._payload = cloudpickle.dumps(function)
        finally:
            if by_value:
                cloudpickle.unregister_pickle_by_value(module)
        self.name = (
            f"{getattr(function, '__module__', '?')}:{getattr(function, '__qualname__', '?')}"
        )
        self._function: Callable[..., Any] | None = function

    def __getstate__(self) -> dict[str, Any]:
        return {"_payload": self._payload, "name": self.name, "_function": None}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._function is None:
            import cloudpickle

            self._function = cloudpickle.loads(self._payload)
        return self._function(*args, **kwargs)


def _installed(module: Any) -> bool:
    """True for modules the workers can import themselves: the standard library, installed
    packages (site-packages) and rlds_hub; False for a user's own scripts and modules."""
    import sysconfig

    name = module.__name__
    if name == "__main__" or name.startswith("rlds_hub_user_"):
        return False
    if name.split(".")[0] == "rlds_hub":
        return True
    path = getattr(module, "__file__", None)
    if path is None:
        return True
    path = os.path.abspath(path)
    stdlib = os.path.abspath(sysconfig.get_paths()["stdlib"])
    return "site-packages" in path or "dist-packages" in path or path.startswith(stdlib)
