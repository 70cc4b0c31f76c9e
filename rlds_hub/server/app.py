"""The app factory: ``create_app(settings)`` builds the FastAPI application (API, web viewer,
error handlers); its lifespan migrates the index and starts the scans."""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from rlds_hub._version import __version__
from rlds_hub.server.api import API_PREFIX
from rlds_hub.server.api.documentation import add_documentation
from rlds_hub.server.api.guard import RequestGuard
from rlds_hub.server.api.headers import SecurityHeaders
from rlds_hub.server.api.responses import ResponseCache
from rlds_hub.server.api.routes import datasets, episodes, health, media, scan, steps
from rlds_hub.server.core.config import Settings
from rlds_hub.server.core.errors import install_error_handlers
from rlds_hub.server.index.facts import ProgressFactory, no_progress
from rlds_hub.server.service import Service

WEB = Path(__file__).parent / "web"
DESCRIPTION = """Browse, search and read the RLDS datasets under the server's roots.

Lists are `{"items": [...], "total": N, "limit": L, "offset": O}`; errors are
`{"error": {"code": ..., "message": ...}}`. NaN and infinite numbers are the strings
"NaN", "Infinity" and "-Infinity". Writes need `Authorization: Bearer <token>`.
"""


def create_app(
    settings: Settings | None = None, *, progress: ProgressFactory = no_progress
) -> FastAPI:
    """The service for ``settings`` (default: from the environment, ``RLDS_HUB_SERVER_*``)."""
    service = Service(settings if settings is not None else Settings(), progress=progress)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = (
            service.settings.worker_threads
        )
        service.start()
        # what start-up built lives as long as the process: keep the collector from walking
        # it again and again (full collections otherwise pause every request for tens of ms)
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="rlds_hub dataset service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.add_middleware(ResponseCache, service=service)
    app.add_middleware(RequestGuard, service=service)
    app.add_middleware(SecurityHeaders)  # outermost: on every response, errors included
    install_error_handlers(app)
    app.include_router(health.router)
    for module in (datasets, episodes, steps, media, scan):
        app.include_router(module.router, prefix=API_PREFIX)
    app.mount("/static", StaticFiles(directory=WEB), name="static")
    add_documentation(app)

    @app.get("/", include_in_schema=False)
    async def viewer() -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})

    return app


def app_from_environment() -> FastAPI:
    """For ``uvicorn --factory rlds_hub.server.app:app_from_environment`` (worker processes;
    ``rlds-hub serve`` passes its start-up scan's summary in ``RLDS_HUB_STARTUP_SCAN``)."""
    app = create_app()
    summary = os.environ.get("RLDS_HUB_STARTUP_SCAN")
    if summary:
        app.state.service.record_scan(json.loads(summary))
    return app
