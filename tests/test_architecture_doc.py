"""docs/architecture.md's package map lists the tree file for file: every module of rlds_hub/
(a package by its directory line), each with a line saying what it holds, and nothing that
is not there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
ENTRY = re.compile(r"^(?P<indent> *)(?P<name>[\w.-]+/?)(?: +(?P<what>\S.*))?$")


def map_entries(text: str) -> dict[str, str]:
    """``{path: description}`` for the ``rlds_hub/`` tree of the map: the code block whose
    first line is ``rlds_hub/``; two spaces of indentation per level; a name ending in ``/``
    is a directory (for a package, its ``__init__.py``)."""
    blocks = re.findall(r"^```\n(rlds_hub/\n.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, "docs/architecture.md needs one code block starting 'rlds_hub/'"
    entries: dict[str, str] = {}
    parents: list[str] = []
    for number, line in enumerate(blocks[0].splitlines(), 1):
        match = ENTRY.match(line)
        assert match, f"map line {number} is not 'name   what it holds': {line!r}"
        depth, rest = divmod(len(match["indent"]), 2)
        assert not rest and depth <= len(parents), f"map line {number}: bad indentation"
        if depth == 0 and number > 1:
            break  # the next top-level entry (pipelines/, tests/, ...): the tree ended
        del parents[depth:]
        name = match["name"]
        path = "/".join([*parents, name.rstrip("/")])
        assert number == 1 or match["what"], f"map line {number}: {path} says nothing"
        assert path not in entries, f"map line {number}: {path} is listed twice"
        entries[path] = match["what"] or ""
        if name.endswith("/"):
            parents.append(name.rstrip("/"))
    return entries


def modules(root: Path) -> set[str]:
    """Every module under ``root`` (rlds_hub/), a package as its directory."""
    found = set()
    for path in root.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        relative = path.relative_to(root.parent)
        found.add(str(relative.parent if path.name == "__init__.py" else relative))
    return found


def test_the_map_lists_every_module_and_nothing_else():
    entries = map_entries(DOC.read_text())
    missing = sorted(modules(ROOT / "rlds_hub") - set(entries))
    extra = sorted(path for path in entries if not (ROOT / path).exists())
    assert not missing, f"modules missing from docs/architecture.md's map: {missing}"
    assert not extra, f"docs/architecture.md's map lists what is not there: {extra}"


def test_the_parser_reads_a_map(tmp_path):
    text = (
        "# x\n\n```\nrlds_hub/\n  cli.py     the command\n  format/    how episodes are stored\n"
        "    plan.py    the leaf plan\n  storage/   datasets on disk\ntests/   pytest\n```\n"
    )
    with pytest.raises(AssertionError, match=r"rlds_hub/cli\.py is listed twice"):
        map_entries(text.replace("  format/", "  cli.py     again\n  format/"))
    assert map_entries(text) == {
        "rlds_hub": "",
        "rlds_hub/cli.py": "the command",
        "rlds_hub/format": "how episodes are stored",
        "rlds_hub/format/plan.py": "the leaf plan",
        "rlds_hub/storage": "datasets on disk",
    }
