"""The packages' lazy exports (``rlds_hub._lazy.attach``): every name of every table resolves
to the object its module defines, ``dir()`` and ``__all__`` list them, an unknown name is
Python's usual AttributeError, importing a package imports none of its table's modules, and
each package's ``if TYPE_CHECKING:`` block imports exactly its table's names (what type
checkers see, since they do not run ``__getattr__``)."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys

import pytest

from rlds_hub import _lazy

PACKAGES = [
    "rlds_hub",
    "rlds_hub.beam",
    "rlds_hub.data",
    "rlds_hub.learners",
    "rlds_hub.recorders",
    "rlds_hub.server",
]


def _tables(package: str) -> tuple[dict[str, str], dict[str, str]]:
    """The package's exports (name -> module) and submodules (name -> module)."""
    module = importlib.import_module(package)
    submodules = {m.rpartition(".")[2]: m for m in getattr(module, "_SUBMODULES", ())}
    return module._EXPORTS, submodules


def _type_checking_imports(package: str) -> set[tuple[str, str]]:
    """``(module, name)`` for each name imported under ``if TYPE_CHECKING:``, asserting each
    is an explicit re-export (``from m import X as X``)."""
    tree = ast.parse(inspect.getsource(importlib.import_module(package)))
    found = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom), ast.dump(statement)
                for alias in statement.names:
                    assert alias.asname == alias.name, f"{package}: import {alias.name} as itself"
                    found.add((statement.module, alias.name))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves_to_its_modules_object(package):
    module = importlib.import_module(package)
    exports, submodules = _tables(package)
    assert exports, f"{package} has an empty table"
    for name, source in exports.items():
        assert getattr(module, name) is getattr(importlib.import_module(source), name), name
    for name, source in submodules.items():
        assert getattr(module, name) is importlib.import_module(source)


@pytest.mark.parametrize("package", PACKAGES)
def test_dir_and_all_list_the_exports(package):
    module = importlib.import_module(package)
    exports, submodules = _tables(package)
    assert {*exports, *submodules} <= set(dir(module))
    assert set(module.__all__) >= set(exports)
    assert not set(module.__all__) & set(submodules)  # import * loads no subpackage
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        getattr(module, name)


@pytest.mark.parametrize("package", PACKAGES)
def test_an_unknown_name_is_the_usual_attribute_error(package):
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match=rf"^module '{package}' has no attribute 'nope'$"):
        module.nope  # noqa: B018
    assert not hasattr(module, "nope")


@pytest.mark.parametrize("package", PACKAGES)
def test_the_type_checking_block_names_exactly_the_table(package):
    exports, submodules = _tables(package)
    table = {(m, n) for n, m in exports.items()} | {(package, n) for n in submodules}
    assert _type_checking_imports(package) == table


def test_importing_the_packages_imports_none_of_their_tables_modules():
    code = (
        "import importlib, sys\n"
        f"packages = {PACKAGES!r}\n"
        "tables = [importlib.import_module(p)._EXPORTS for p in packages]\n"
        # rlds_hub's own table names subpackages, which rlds_hub.data imports eagerly
        "sources = {s for table in tables[1:] for s in table.values()}\n"
        "heavy = {'tensorflow', 'apache_beam', 'jax', 'fastapi'}\n"
        "print(sorted((sources | heavy) & set(sys.modules)))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_a_submodule_must_belong_to_the_package():
    with pytest.raises(
        ValueError, match=r"'rlds_hub\.data' is not a submodule of 'rlds_hub\.beam'"
    ):
        _lazy.attach("rlds_hub.beam", {}, submodules=["rlds_hub.data"])
