"""Dependencies point one way (format <- storage <- recorders / data / inspection <- CLI), with
no cycles between packages, no private names imported across packages, and TensorFlow
imported at module level only where it is the point (``rlds_hub.transforms``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rlds_hub"

# Which rlds_hub packages each package may import (top-level modules: "spec", "checks",
# "command_line", "_compat", "__init__" — the version — are allowed everywhere).
ALLOWED = {
    "format": set(),
    "storage": {"format"},
    "envs": set(),
    "recorders": {"format", "storage", "envs"},
    "data": {"format", "storage"},
    "inspection": {"format", "storage"},
    "transforms": set(),
    "beam": {"format", "storage", "inspection", "data", "envs", "recorders"},
    "server": {"format", "storage", "inspection", "data"},
    "learners": {"format", "storage", "inspection", "data", "envs", "recorders"},
    "cli": {"format", "storage", "inspection", "data", "envs", "recorders", "learners"},
    "testing": {"format", "storage"},
}
SHARED = {"spec", "checks", "command_line", "_compat", "__init__"}
# Only these may import TensorFlow (or TFDS) at module level: the tf.data transformations,
# and TFDS builder classes (a TFDS builder is TFDS).
TENSORFLOW_AT_IMPORT = {"transforms"}
TENSORFLOW_MODULES = {"rlds_hub.beam.tfds_builder"}


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).with_suffix("")
        parts = relative.parts
        package = parts[0]
        yield path, package, ".".join(("rlds_hub", *parts))


def _imports(tree: ast.AST, module: str):
    """(imported module, names, at module level?) for every import in a module."""
    top_level = {id(node) for node in getattr(tree, "body", [])}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], id(node) in top_level
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            yield base, [a.name for a in node.names], id(node) in top_level


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "rlds_hub" or len(parts) == 1:
        return None
    return parts[1]


MODULES = list(_modules())


@pytest.mark.parametrize(("path", "package", "module"), MODULES,
                         ids=[m for _, _, m in MODULES])
def test_imports_point_one_way(path, package, module):
    if package in SHARED:
        return
    allowed = ALLOWED.get(package)
    assert allowed is not None, f"{module}: a new package; add it to ALLOWED"
    tree = ast.parse(path.read_text())
    for imported, names, _ in _imports(tree, module):
        target = _package_of(imported)
        if imported == "rlds_hub":  # from rlds_hub import spec / __version__ / data ...
            targets = [n for n in names if n not in ("__version__", "_compat")]
        else:
            targets = [target] if target else []
        for target in targets:
            if target in SHARED or target == package:
                continue
            assert target in allowed, f"{module} imports rlds_hub.{target}"


@pytest.mark.parametrize(("path", "package", "module"), MODULES,
                         ids=[m for _, _, m in MODULES])
def test_no_private_names_across_packages(path, package, module):
    tree = ast.parse(path.read_text())
    for imported, names, _ in _imports(tree, module):
        target = _package_of(imported)
        if not target or target == package or target in SHARED:
            continue
        private_module = any(part.startswith("_") for part in imported.split(".")[2:])
        private_names = [n for n in names if n.startswith("_")]
        assert not private_module and not private_names, f"{module}: {imported} {names}"


@pytest.mark.parametrize(("path", "package", "module"), MODULES,
                         ids=[m for _, _, m in MODULES])
def test_tensorflow_is_imported_at_module_level_only_by_the_transforms(path, package, module):
    if package in TENSORFLOW_AT_IMPORT or module in TENSORFLOW_MODULES | {"rlds_hub.testing"}:
        return
    tree = ast.parse(path.read_text())
    for imported, _, top_level in _imports(tree, module):
        root = imported.split(".")[0]
        assert not (top_level and root in ("tensorflow", "tensorflow_datasets")), (
            f"{module} imports {imported} at module level"
        )


def test_package_graph_has_no_cycles():
    graph: dict[str, set[str]] = {}
    for path, package, module in MODULES:
        for imported, _names, _ in _imports(ast.parse(path.read_text()), module):
            target = _package_of(imported)
            if target and target != package and target not in SHARED and package not in SHARED:
                graph.setdefault(package, set()).add(target)
    visiting, done = set(), set()

    def visit(node: str, trail: list[str]) -> None:
        if node in done:
            return
        assert node not in visiting, f"import cycle: {' -> '.join([*trail, node])}"
        visiting.add(node)
        for child in graph.get(node, ()):
            visit(child, [*trail, node])
        visiting.discard(node)
        done.add(node)

    for node in list(graph):
        visit(node, [])
