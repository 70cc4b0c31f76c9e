"""The dataset service: a FastAPI index of RLDS datasets (SQLite by default, PostgreSQL when
shared), its REST API and a web viewer. Start it with ``rlds-hub serve --root DIR``, or
build the app with :func:`create_app`. It needs the ``server`` extra
(``pip install 'rlds-hub[server]'``); names load on first use, so importing this package (as
the CLI does) imports none of it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlds_hub.extras import require

if TYPE_CHECKING:
    from rlds_hub.server.app import create_app
    from rlds_hub.server.core.config import Settings

_EXPORTS = {
    "create_app": "rlds_hub.server.app",
    "Settings": "rlds_hub.server.core.config",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rlds_hub.server' has no attribute {name!r}")
    return getattr(require(_EXPORTS[name], "server", "the dataset service"), name)


__all__ = ["Settings", "create_app"]
