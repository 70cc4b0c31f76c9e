"""The dataset service: a FastAPI index of RLDS datasets (SQLite by default, PostgreSQL when
shared), its REST API and a web viewer. Start it with ``rlds-hub serve --root DIR``, or
build the app with :func:`create_app`. It needs the ``server`` extra
(``pip install 'rlds-hub[server]'``); names load on first use, so importing this package (as
the CLI does) imports none of it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlds_hub import _lazy
from rlds_hub.extras import require

if TYPE_CHECKING:
    from rlds_hub.server.app import create_app as create_app
    from rlds_hub.server.core.config import Settings as Settings

_EXPORTS = {
    "create_app": "rlds_hub.server.app",
    "Settings": "rlds_hub.server.core.config",
}
__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    _EXPORTS,
    importer=lambda module, name: require(module, "server", "the dataset service"),
)
