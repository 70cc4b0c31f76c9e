"""The versioned API's prefix is written once (``rlds_hub.server.api.API_PREFIX``, given to
``include_router``), and the service's URLs are the ones it always had."""

from __future__ import annotations

import ast
from pathlib import Path

from rlds_hub.server import Settings, create_app
from rlds_hub.server.api import API_PREFIX, routes

PATHS = {
    "/api/v1/datasets": ["get", "post"],
    "/api/v1/datasets/{name}": ["delete", "get"],
    "/api/v1/datasets/{name}/episodes": ["get"],
    "/api/v1/datasets/{name}/episodes/{index}": ["get"],
    "/api/v1/datasets/{name}/episodes/{index}/animation": ["get"],
    "/api/v1/datasets/{name}/episodes/{index}/filmstrip": ["get"],
    "/api/v1/datasets/{name}/episodes/{index}/frames/{step}": ["get"],
    "/api/v1/datasets/{name}/episodes/{index}/steps": ["get"],
    "/api/v1/datasets/{name}/reindex": ["post"],
    "/api/v1/scan": ["post"],
    "/healthz": ["get"],
    "/readyz": ["get"],
}


def test_the_urls_are_unchanged(tmp_path):
    app = create_app(Settings(roots=[tmp_path], database_url=f"sqlite:///{tmp_path}/i.sqlite3"))
    paths = {path: sorted(operations) for path, operations in app.openapi()["paths"].items()}
    assert paths == PATHS
    assert API_PREFIX == "/api/v1"


def test_no_router_writes_the_prefix():
    for module in sorted(Path(routes.__file__).parent.glob("*.py")):
        tree = ast.parse(module.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        written = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and API_PREFIX in node.value
            and id(node) not in docstrings
        ]
        assert written == [], f"{module.name} writes {API_PREFIX} (lines {written})"
