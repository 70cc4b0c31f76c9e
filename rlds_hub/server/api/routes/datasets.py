"""``/api/v1/datasets``: search, detail, registration, re-indexing and removal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.concurrency import run_in_threadpool

from rlds_hub.server.api import convert
from rlds_hub.server.api.deps import (
    ConnectionDep,
    DatasetName,
    DatasetRowDep,
    PaginationDep,
    ServiceDep,
    Writer,
)
from rlds_hub.server.api.schemas.common import Page, error_responses
from rlds_hub.server.api.schemas.datasets import (
    DatasetDetail,
    DatasetItem,
    OutcomeModel,
    RegisterRequest,
    Removed,
)
from rlds_hub.server.core.errors import ApiError
from rlds_hub.server.index import queries
from rlds_hub.server.index.discovery import PathNotAllowed, inside_roots
from rlds_hub.server.index.indexer import Outcome
from rlds_hub.server.service import Service

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"],
                   responses=error_responses(404, 422))
_WRITE_ERRORS = error_responses(400, 401, 403, 404, 409, 422)


@router.get("", summary="search datasets")
def list_datasets(
    connection: ConnectionDep,
    page: PaginationDep,
    q: Annotated[str | None, Query(max_length=200, description=(
        "words that must all occur in the name, description or metadata"))] = None,
) -> Page[DatasetItem]:
    rows, total = queries.search_datasets(connection, q, page.limit, page.offset)
    return Page[DatasetItem](items=[convert.dataset_item(r) for r in rows], total=total,
                             limit=page.limit, offset=page.offset)


@router.get("/{name}", summary="one dataset: features, splits, statistics, provenance")
def get_dataset(name: DatasetName, connection: ConnectionDep) -> DatasetDetail:
    row = queries.dataset_by_name(connection, name)
    if row is None:
        raise ApiError(404, "dataset_not_found",
                       f"no dataset named {name!r}; list them at /api/v1/datasets")
    return convert.dataset_detail(row)


def _outcome_or_error(outcome: Outcome) -> OutcomeModel:
    if outcome.action == "failed":
        raise ApiError(409, outcome.code or "indexing_failed", outcome.error or "failed")
    return OutcomeModel(**vars(outcome))


def _detail(service: Service, name: str) -> DatasetDetail:
    with service.engine.connect() as connection:
        row = queries.dataset_by_name(connection, name)
    if row is None:  # removed by a concurrent request
        raise ApiError(404, "dataset_not_found", f"dataset {name!r} was removed meanwhile")
    return convert.dataset_detail(row)


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[Writer],
             responses=_WRITE_ERRORS, summary="register (and index) a dataset directory")
async def register_dataset(request: RegisterRequest, service: ServiceDep) -> DatasetDetail:
    try:
        path, root = inside_roots(request.path, service.settings.roots)
    except PathNotAllowed as e:
        raise ApiError(400, "path_not_allowed", str(e)) from e
    if not (path / "dataset_info.json").is_file():
        raise ApiError(400, "not_a_dataset",
                       f"{request.path} is not an RLDS dataset directory (no dataset_info.json)")
    await run_in_threadpool(service.indexer.include, str(path))
    outcome = await run_in_threadpool(service.indexer.index_path, path, root=root,
                                      name=request.name, registered=True)
    _outcome_or_error(outcome)
    service.reader.forget(str(path))
    return await run_in_threadpool(_detail, service, outcome.name)


@router.post("/{name}/reindex", dependencies=[Writer], responses=_WRITE_ERRORS,
             summary="index a dataset again")
async def reindex_dataset(
    row: DatasetRowDep, service: ServiceDep,
    force: Annotated[bool, Query(description="even if no file changed")] = False,
) -> OutcomeModel:
    try:
        path, root = inside_roots(row.path, service.settings.roots)
    except PathNotAllowed as e:
        raise ApiError(409, "path_not_allowed", f"{e} (the roots changed since indexing)") from e
    outcome = await run_in_threadpool(service.indexer.index_path, path, root=root,
                                      name=row.name, force=force)
    service.reader.forget(row.path)
    return _outcome_or_error(outcome)


@router.delete("/{name}", dependencies=[Writer], responses=_WRITE_ERRORS,
               summary="remove a dataset from the index (its files stay)")
async def remove_dataset(row: DatasetRowDep, service: ServiceDep) -> Removed:
    await run_in_threadpool(service.indexer.remove, row.id, row.path)
    service.reader.forget(row.path)
    return Removed(name=row.name, path=row.path)
