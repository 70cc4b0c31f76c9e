"""Lazy exports for a package's ``__init__``: names that load their module on first use.

After the Scientific Python ``lazy_loader.attach`` (SPEC 1): a package gives a table of the
names it exports and the module that defines each, and gets back its ``__getattr__``,
``__dir__`` and ``__all__``. Importing the package imports none of the table's modules.
Modules are named in full (``"rlds_hub.data.loading"``), so the layering test sees the
table's string imports. Type checkers do not run ``__getattr__``: each package imports the
same names under ``if TYPE_CHECKING:`` (``tests/test_exports.py`` checks the two agree).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

# (module, exported name) -> the imported module; an extra's ``require`` goes here.
Importer = Callable[[str, str], ModuleType]


def _import(module: str, name: str) -> ModuleType:
    return importlib.import_module(module)


def attach(
    package: str,
    exports: Mapping[str, str],
    *,
    submodules: Iterable[str] = (),
    eager: Iterable[str] = (),
    importer: Importer = _import,
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``.

    ``exports`` maps each exported name to the module that defines it (the attribute of the
    same name); ``submodules`` are full module names exported as modules (not in
    ``__all__``, so ``import *`` loads none of them); ``eager`` are names the package defines
    itself (in ``__all__``). ``importer`` imports a module, e.g. one that names the pip extra
    it needs when it is missing.
    """
    modules = {module.rpartition(".")[2]: module for module in submodules}
    for module in modules.values():
        if module.rpartition(".")[0] != package:
            raise ValueError(f"{module!r} is not a submodule of {package!r}")
    public = sorted({*exports, *eager})

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importer(exports[name], name), name)
        if name in modules:
            return importer(modules[name], name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports, *modules})

    return __getattr__, __dir__, public
