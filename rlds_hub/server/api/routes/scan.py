"""``POST /api/v1/scan``: index every dataset under the roots now."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from rlds_hub.server.api.deps import ServiceDep, Writer
from rlds_hub.server.api.schemas.common import error_responses
from rlds_hub.server.api.schemas.datasets import OutcomeModel, ScanReportModel
from rlds_hub.server.core.errors import ApiError

router = APIRouter(tags=["index"])


@router.post(
    "/scan",
    dependencies=[Writer],
    responses=error_responses(401, 403, 503),
    summary="scan the roots: index new and changed datasets, drop vanished ones",
)
async def scan(service: ServiceDep) -> ScanReportModel:
    report = await run_in_threadpool(service.scan)
    if report is None:
        raise ApiError(503, "scan_failed", f"the scan failed: {service.scan_error}")
    return ScanReportModel(
        outcomes=[OutcomeModel(**vars(o)) for o in report.outcomes],
        seconds=report.seconds,
        indexed=report.count("indexed"),
        unchanged=report.count("unchanged"),
        failed=report.count("failed"),
        removed=report.count("removed"),
        excluded=report.count("excluded"),
    )
