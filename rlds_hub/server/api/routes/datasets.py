"""``/api/v1/datasets``: search, detail, registration, re-indexing and removal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from rlds_hub.server.api import presenters
from rlds_hub.server.api.deps import (
    DatasetName,
    IndexedDataset,
    PaginationDep,
    ServiceDep,
    Writer,
    connect,
    find_dataset,
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
from rlds_hub.storage import DatasetError, files

router = APIRouter(
    prefix="/datasets", tags=["datasets"], responses=error_responses(400, 404, 422, 503)
)
_WRITE_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422)
JSON = "application/json"


@router.get("", summary="search datasets", response_model=Page[DatasetItem])
async def list_datasets(
    service: ServiceDep,
    page: PaginationDep,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description=("words that must all occur in the name, description or metadata"),
        ),
    ] = None,
) -> Response:
    key = service.list_key(q, page.limit, page.offset)

    def work() -> bytes:
        with connect(service) as connection:
            rows, total = queries.search_datasets(connection, q, page.limit, page.offset)
        document = Page[DatasetItem](
            items=[presenters.dataset_item(r) for r in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )
        body = document.model_dump_json().encode()
        return body if key is None else service.pages.put(key, body)

    body = service.pages.get(key) if key is not None else None
    if body is None:  # a search reads every dataset's text: in the query pool
        body = await (service.query_pool.run(work) if q else run_in_threadpool(work))
    return Response(body, media_type=JSON)


def _detail_key(state: IndexedDataset) -> tuple:
    return ("detail", state.token, state.status, state.error)


def _detail_bytes(service: Service, name: str) -> bytes:
    """The detail document, kept per (generation, state) of the dataset."""
    with connect(service) as connection:
        state = find_dataset(service, connection, name)
        key = _detail_key(state)
        body = service.pages.get(key)
        if body is None:
            row = queries.dataset_by_name(connection, name)
            if row is None:
                raise ApiError(404, "dataset_not_found", f"dataset {name!r} was just removed")
            body = service.pages.put(
                key,
                presenters.dataset_detail(row, service.settings.roots).model_dump_json().encode(),
            )
    return body


@router.get(
    "/{name}",
    summary="one dataset: features, splits, statistics, provenance",
    response_model=DatasetDetail,
)
async def get_dataset(name: DatasetName, service: ServiceDep) -> Response:
    known = service.fresh_state(name)
    body = service.pages.get(_detail_key(known)) if known is not None else None
    if body is None:
        body = await run_in_threadpool(_detail_bytes, service, name)
    return Response(body, media_type=JSON)


def _shortened(text: str, keep: int = 120) -> str:
    return repr(text) if len(text) <= keep else f"{text[:keep]!r}... ({len(text):,} characters)"


def _outcome_or_error(outcome: Outcome) -> OutcomeModel:
    if outcome.action == "failed":
        raise ApiError(409, outcome.code or "indexing_failed", outcome.error or "failed")
    return OutcomeModel(**vars(outcome))


def _dataset(service: Service, name: str):
    with connect(service) as connection:
        return find_dataset(service, connection, name)


def _holds_dataset_info(path: Path | str) -> bool:
    """Whether the directory (or remote prefix) ``path`` holds a ``dataset_info.json``."""
    if isinstance(path, str):
        try:
            return files.exists(files.join(path, "dataset_info.json"))
        except DatasetError as e:  # refused by the store (403, no credentials)
            raise OSError(str(e)) from e
    return (path / "dataset_info.json").is_file()


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Writer],
    responses=_WRITE_ERRORS,
    summary="register (and index) a dataset directory",
    response_model=DatasetDetail,
)
async def register_dataset(request: RegisterRequest, service: ServiceDep) -> Response:
    try:
        path, root = inside_roots(request.path, service.settings.roots)
        is_dataset = await run_in_threadpool(_holds_dataset_info, path)
    except PathNotAllowed as e:
        raise ApiError(400, "path_not_allowed", str(e)) from e
    except OSError as e:  # the system refuses the path itself (too long, ...)
        raise ApiError(
            400,
            "bad_path",
            f"path {_shortened(request.path)}: "
            f"{e.strerror or e}; send the path of a dataset directory",
        ) from e
    if not is_dataset:
        raise ApiError(
            400,
            "not_a_dataset",
            f"{request.path} is not an RLDS dataset directory (no dataset_info.json)",
        )
    await run_in_threadpool(service.indexer.include, str(path))
    outcome = await run_in_threadpool(
        service.indexer.index_path, path, root=root, name=request.name, registered=True
    )
    service.forget_states()
    _outcome_or_error(outcome)
    service.reader.forget(str(path))
    body = await run_in_threadpool(_detail_bytes, service, outcome.name)
    return Response(body, status_code=201, media_type=JSON)


@router.post(
    "/{name}/reindex",
    dependencies=[Writer],
    responses=_WRITE_ERRORS,
    summary="index a dataset again",
)
async def reindex_dataset(
    name: DatasetName,
    service: ServiceDep,
    force: Annotated[bool, Query(description="even if no file changed")] = False,
) -> OutcomeModel:
    dataset = await run_in_threadpool(_dataset, service, name)
    try:
        path, root = inside_roots(dataset.path, service.settings.roots)
    except PathNotAllowed as e:
        raise ApiError(409, "path_not_allowed", f"{e} (the roots changed since indexing)") from e
    outcome = await run_in_threadpool(
        service.indexer.index_path, path, root=root, name=dataset.name, force=force
    )
    service.forget_states()
    service.reader.forget(dataset.path)
    return _outcome_or_error(outcome)


@router.delete(
    "/{name}",
    dependencies=[Writer],
    responses=_WRITE_ERRORS,
    summary="remove a dataset from the index (its files stay)",
)
async def remove_dataset(name: DatasetName, service: ServiceDep) -> Removed:
    dataset = await run_in_threadpool(_dataset, service, name)
    await run_in_threadpool(service.indexer.remove, dataset.id, dataset.path)
    service.forget_states()
    service.reader.forget(dataset.path)
    return Removed(name=dataset.name, path=dataset.path)
