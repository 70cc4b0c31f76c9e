"""Dependencies point one way (format <- storage <- recorders / data / inspection <- beam /
server / learners <- cli), the module import graph has no cycle, no private names are
imported across packages, and TensorFlow is imported at module level only where it is the
point (``rlds_hub.transforms``).

The checker sees every import a module can make: ``import`` statements at module level and
inside functions, and string imports — a literal naming an ``rlds_hub`` module (the lazy
export tables, ``importlib.import_module("rlds_hub.x")``, ``"module:attribute"`` strings) and
an f-string passed to ``import_module`` (``f"rlds_hub.beam.jobs.{job}"``: the modules it can
name). ``check(root)`` takes the package directory, so a test can plant violations in a copy.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rlds_hub"

# Which rlds_hub packages each package or top-level module may import. The bottom modules
# ("rlds_types", "checks", "command_line", "extras", "_compat", "_version", "_lazy") import no
# other rlds_hub module and every module may import them; "__init__" is the package's lazy facade (its exports
# are string imports); "cli" reaches the packages that add subcommands by string.
ALLOWED = {
    "rlds_types": set(),
    "checks": set(),
    "command_line": set(),
    "extras": set(),
    "_compat": set(),
    "_version": set(),
    "_lazy": set(),
    "format": set(),
    "storage": {"format"},
    "envs": set(),
    "recorders": {"format", "storage", "envs"},
    "data": {"format", "storage"},
    "inspection": {"format", "storage"},
    "transforms": set(),
    "lerobot": {"format", "storage"},
    "beam": {"format", "storage", "inspection", "data", "envs", "recorders", "lerobot"},
    "server": {"format", "storage", "inspection", "data"},
    "learners": {"format", "storage", "inspection", "data", "envs", "recorders", "testing"},
    "cli": {
        "format",
        "storage",
        "inspection",
        "data",
        "envs",
        "recorders",
        "learners",
        "beam",
        "server",
    },
    "testing": {"format", "storage", "recorders", "envs", "inspection", "server"},
    "pipelines": {"beam"},
    "__init__": {
        "format",
        "storage",
        "inspection",
        "data",
        "envs",
        "recorders",
        "transforms",
        "beam",
        "server",
        "learners",
    },
}
BOTTOM = {"rlds_types", "checks", "command_line", "extras", "_compat", "_version", "_lazy"}
# Only these may import TensorFlow (or TFDS) at module level: the tf.data transformations,
# and TFDS builder classes (a TFDS builder is TFDS).
TENSORFLOW_AT_IMPORT = {"transforms"}
TENSORFLOW_MODULES = {"rlds_hub.beam.tfds_builder", "rlds_hub.testing"}


@dataclasses.dataclass(frozen=True)
class Import:
    """One import of a module: ``target`` (a dotted name, resolved to an ``rlds_hub``
    module where it names one), the names taken from it, where it is and how it is made."""

    target: str
    names: tuple[str, ...]
    top_level: bool
    line: int
    by_string: bool = False


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((root.name, *parts))] = path
    return found


def package_of(module: str) -> str:
    """The key of ``ALLOWED`` a module belongs to: its subpackage or top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _strings(tree: ast.AST) -> Iterator[ast.Constant]:
    """String literals of a module that are neither docstrings nor logger names."""
    skip = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            skip.add(id(body[0].value))
        if isinstance(node, ast.Call) and _called(node) == "getLogger":
            skip.update(id(a) for a in node.args)
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node


def _called(call: ast.Call) -> str:
    function = call.func
    if isinstance(function, ast.Attribute):
        return function.attr
    return function.id if isinstance(function, ast.Name) else ""


def imports(module: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """Every import ``module`` can make (statements anywhere, and string imports)."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = []
    package = module if _is_package(path) else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(a.name, (), id(node) in top_level, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known:  # from package import module
                    found.append(Import(submodule, (), id(node) in top_level, node.lineno))
                else:
                    found.append(Import(base, (alias.name,), id(node) in top_level, node.lineno))
    for constant in _strings(tree):
        target, _, attribute = constant.value.partition(":")
        if (
            "." in target
            and target in known
            and all(part.isidentifier() for part in attribute.split(".") if attribute)
        ):
            found.append(Import(target, (), False, constant.lineno, by_string=True))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and _called(node) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.JoinedStr)
        ):
            found += [
                Import(target, (), False, node.lineno, by_string=True)
                for target in _formatted_targets(node.args[0], tree, known)
            ]
    return found


def _formatted_targets(text: ast.JoinedStr, tree: ast.Module, known: dict[str, Path]) -> list[str]:
    """The modules an f-string such as ``f"rlds_hub.beam.jobs.{job}"`` can name: those of a
    module-level literal collection the name is checked against (``if name in _LAZY``),
    else every module directly under its prefix."""
    first = text.values[0] if text.values else None
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return []
    prefix = first.value
    children = [
        m
        for m in known
        if m.startswith(prefix) and m != prefix.rstrip(".") and "." not in m[len(prefix) :]
    ]
    rest = text.values[1:]
    if (
        len(rest) == 1
        and isinstance(rest[0], ast.FormattedValue)
        and isinstance(rest[0].value, ast.Name)
    ):
        allowed = _checked_against(rest[0].value.id, text, tree)
        if allowed is not None:
            return [m for m in children if m[len(prefix) :] in allowed]
    return children


def _checked_against(name: str, text: ast.JoinedStr, tree: ast.Module) -> set[str] | None:
    """The strings of the module-level literal collection that ``name`` is tested against
    (``if name in _LAZY_MODULES: ...``) by an ``if`` holding ``text``, if there is one."""
    literals = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Set | ast.List | ast.Tuple | ast.Dict)
        ):
            items = node.value.keys if isinstance(node.value, ast.Dict) else node.value.elts
            literals[node.targets[0].id] = {i.value for i in items if isinstance(i, ast.Constant)}
    for node in ast.walk(tree):
        test = getattr(node, "test", None) if isinstance(node, ast.If) else None
        if (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name)
            and test.left.id == name
            and isinstance(test.ops[0], ast.In)
            and isinstance(test.comparators[0], ast.Name)
            and test.comparators[0].id in literals
            and any(inner is text for part in node.body for inner in ast.walk(part))
        ):
            return literals[test.comparators[0].id]
    return None


@dataclasses.dataclass
class Graph:
    """The import graph of the package at ``root``: each module's imports."""

    root: Path
    known: dict[str, Path] = dataclasses.field(init=False)
    edges: dict[str, list[Import]] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.known = modules(self.root)
        self.edges = {m: imports(m, p, self.known) for m, p in self.known.items()}

    def internal(self, module: str) -> Iterator[Import]:
        """The imports of ``module`` that name a module of the package."""
        for item in self.edges[module]:
            if item.target in self.known and item.target != module:
                yield item


def layering_violations(graph: Graph) -> list[str]:
    """Imports (of any kind) of a package that ``ALLOWED`` does not list."""
    found = []
    for module in graph.known:
        package = package_of(module)
        allowed = ALLOWED.get(package)
        if allowed is None:
            found.append(f"{module}: a new package or top-level module; add it to ALLOWED")
            continue
        for item in graph.internal(module):
            target = package_of(item.target)
            if target != package and target not in BOTTOM and target not in allowed:
                how = " by string" if item.by_string else ""
                found.append(
                    f"{module}:{item.line} imports {item.target}{how} "
                    f"({package} may not import {target})"
                )
    return found


def private_name_violations(graph: Graph) -> list[str]:
    """Private modules or names imported from another package."""
    found = []
    for module in graph.known:
        for item in graph.edges[module]:
            if not item.target.startswith(f"{graph.root.name}.") or item.by_string:
                continue
            target = package_of(item.target)
            if target in (package_of(module), *BOTTOM):
                continue
            private_module = any(p.startswith("_") for p in item.target.split(".")[2:])
            private_names = [n for n in item.names if n.startswith("_")]
            if private_module or private_names:
                found.append(f"{module}:{item.line} imports {item.target} {private_names}")
    return found


def tensorflow_violations(graph: Graph) -> list[str]:
    """TensorFlow or TFDS imported at module level outside ``TENSORFLOW_AT_IMPORT``."""
    found = []
    for module in graph.known:
        if package_of(module) in TENSORFLOW_AT_IMPORT or module in TENSORFLOW_MODULES:
            continue
        for item in graph.edges[module]:
            if item.top_level and item.target.split(".")[0] in (
                "tensorflow",
                "tensorflow_datasets",
            ):
                found.append(f"{module}:{item.line} imports {item.target} at module level")
    return found


def cycles(graph: Graph) -> list[str]:
    """One cycle per strongly connected group of modules (imports of every kind count)."""
    successors = {m: sorted({i.target for i in graph.internal(m)}) for m in graph.known}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for child in successors[node]:
            if child not in index:
                connect(child)
                low[node] = min(low[node], low[child])
            elif child in stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(set(group))

    for node in successors:
        if node not in index:
            connect(node)
    found = {}
    for group in groups:
        for start in sorted(group):
            cycle = _cycle_through(start, group, successors)
            found.setdefault(frozenset(cycle), f"import cycle: {' -> '.join(cycle)}")
    return list(found.values())


def _cycle_through(start: str, group: set[str], successors: dict[str, list[str]]) -> list[str]:
    """A shortest cycle through ``start``, a module of the strongly connected ``group``."""
    trails = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in successors[node]:
            if child == start:
                return [*trails[node], start]
            if child in group and child not in trails:
                trails[child] = [*trails[node], child]
                queue.append(child)
    raise AssertionError(f"no cycle in {group}")


def check(root: Path) -> list[str]:
    """Every violation in the package at ``root``, one message each."""
    graph = Graph(root)
    found = (
        layering_violations(graph)
        + private_name_violations(graph)
        + tensorflow_violations(graph)
        + cycles(graph)
    )
    return list(dict.fromkeys(found))


@pytest.fixture(scope="module")
def graph() -> Graph:
    return Graph(ROOT)


def test_imports_point_one_way(graph):
    assert list(dict.fromkeys(layering_violations(graph))) == []


def test_no_private_names_across_packages(graph):
    assert list(dict.fromkeys(private_name_violations(graph))) == []


def test_tensorflow_is_imported_at_module_level_only_by_the_transforms(graph):
    assert tensorflow_violations(graph) == []


def test_module_graph_has_no_cycles(graph):
    assert cycles(graph) == []


def test_the_checker_sees_string_and_lazy_imports(graph):
    cli = {i.target for i in graph.internal("rlds_hub.cli") if i.by_string}
    assert {
        "rlds_hub.beam.commands",
        "rlds_hub.server.commands",
        "rlds_hub.learners.commands",
    } <= cli
    jobs = {i.target for i in graph.internal("rlds_hub.beam.commands") if i.by_string}
    assert "rlds_hub.beam.jobs.map" in jobs
    facade = {i.target for i in graph.internal("rlds_hub") if i.by_string}
    assert {"rlds_hub.data", "rlds_hub.beam", "rlds_hub.rlds_types"} <= facade


def _plant(tmp_path: Path, module: str, code: str) -> Path:
    """A copy of the package with ``code`` appended to ``module`` (a relative path)."""
    copy = tmp_path / ROOT.name
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / module, "a") as f:
        f.write(f"\n{code}\n")
    return copy


@pytest.mark.parametrize(
    ("module", "code", "expected"),
    [
        (
            "storage/reader.py",  # a string import of an upper layer, inside a function
            'def _late():\n    import importlib\n    return importlib.import_module("rlds_hub.server.app")',
            r"rlds_hub\.storage\.reader:\d+ imports rlds_hub\.server\.app by string "
            r"\(storage may not import server\)",
        ),
        (
            "storage/reader.py",  # a lazy-export table naming an upper layer
            '_LAZY = {"create_app": "rlds_hub.server.app"}',
            r"rlds_hub\.storage\.reader:\d+ imports rlds_hub\.server\.app by string",
        ),
        (
            "storage/__init__.py",  # the lazy-export helper's table naming an upper layer
            '_late = _lazy.attach(__name__, {"Recorder": "rlds_hub.recorders.recorder"})',
            r"rlds_hub\.storage:\d+ imports rlds_hub\.recorders\.recorder by string "
            r"\(storage may not import recorders\)",
        ),
        (
            "rlds_types.py",  # a bottom module importing a package
            "from rlds_hub.learners import bc  # noqa",
            r"rlds_hub\.rlds_types:\d+ imports rlds_hub\.learners\.bc \(rlds_types may not import learners\)",
        ),
        (
            "storage/dataset_files.py",  # a module-level cycle inside a package, through a function
            "def _late():\n    from rlds_hub.storage import dataset  # noqa",
            r"import cycle: .*rlds_hub\.storage\.dataset_files -> .*rlds_hub\.storage\.dataset",
        ),
    ],
    ids=["string import", "lazy table", "lazy helper", "bottom module", "cycle in a package"],
)
def test_the_checker_reports_each_planted_violation(tmp_path, module, code, expected):
    copy = _plant(tmp_path, module, code)
    found = check(copy)
    assert any(re.fullmatch(f"{expected}.*", v) for v in found), found


def test_the_tree_passes_the_checker():
    assert check(ROOT) == []
