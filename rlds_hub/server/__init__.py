"""The dataset service: a FastAPI index of RLDS datasets (SQLite by default, PostgreSQL when
shared), its REST API and a web viewer. Start it with ``rlds-hub serve --root DIR``, or
build the app with :func:`create_app`."""

from rlds_hub.server.app import create_app
from rlds_hub.server.core.config import Settings

__all__ = ["Settings", "create_app"]
