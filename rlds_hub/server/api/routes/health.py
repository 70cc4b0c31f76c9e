"""``/healthz`` (the process answers) and ``/readyz`` (the index is reachable, migrated and
the first scan is done)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from rlds_hub.server.api.deps import ServiceDep
from rlds_hub.server.index import database

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    database: str
    problems: list[str]
    scans: int
    last_scan: dict[str, Any] | None


@router.get("/healthz", summary="the process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", summary="ready to serve", responses={503: {"model": Readiness}})
async def readyz(service: ServiceDep) -> Readiness:
    problems = []
    try:
        await run_in_threadpool(database.check_ready, service.engine)
    except database.IndexUnavailable as e:
        problems.append(str(e))
    if not service.initial_scan_done.is_set():
        problems.append("the first scan of the roots is still running")
    if service.scan_error:
        problems.append(f"the last scan failed: {service.scan_error}")
    body = Readiness(
        status="not_ready" if problems else "ready",
        database=database.describe_url(service.database_url),
        problems=problems,
        scans=service.scans,
        last_scan=service.last_scan,
    )
    if problems:
        return JSONResponse(body.model_dump(), status_code=503)  # type: ignore[return-value]
    return body
