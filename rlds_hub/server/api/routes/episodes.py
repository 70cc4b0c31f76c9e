"""``/api/v1/datasets/{name}/episodes``: filtered, ordered pages of episodes, and one episode.

Pages are answered from the index alone; their JSON is kept per dataset generation, so
pages several viewers (or one paging back and forth) ask for are served without a query.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import StringConstraints

from rlds_hub.server.api import presenters
from rlds_hub.server.api.deps import (
    MAX_INDEX,
    SPLIT_PATTERN,
    DatasetName,
    IndexedDataset,
    Limit,
    Offset,
    Pagination,
    ServiceDep,
    SplitQuery,
    check_readable,
    connect,
    find_dataset,
    resolve_split,
)
from rlds_hub.server.api.reads import locate
from rlds_hub.server.api.schemas.common import Page, error_responses
from rlds_hub.server.api.schemas.episodes import EpisodeDetail, EpisodeItem
from rlds_hub.server.core.errors import ApiError
from rlds_hub.server.index import queries
from rlds_hub.server.service import Service

router = APIRouter(
    prefix="/datasets/{name}/episodes",
    tags=["episodes"],
    responses=error_responses(400, 404, 409, 422, 503),
)
OrderBy = Literal["index", "-index", "length", "-length", "return", "-return"]
EpisodeIndex = Annotated[int, Path(ge=0, le=MAX_INDEX, description="position in the split")]
# <field><op><value>: what queries.Condition.parse reads (the field must also exist)
MetaCondition = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_./-]{1,255}(?:!=|>=|<=|=|>|<)", max_length=1300)
]


@router.get("", summary="episodes, filtered and ordered", response_model=Page[EpisodeItem])
async def list_episodes(
    name: DatasetName,
    request: Request,
    limit: Limit = 50,
    offset: Offset = 0,
    split: Annotated[
        str | None, Query(max_length=128, pattern=SPLIT_PATTERN, description="only this split")
    ] = None,
    min_return: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    max_return: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    min_length: Annotated[int | None, Query(ge=0, le=MAX_INDEX, description="RLDS steps")] = None,
    max_length: Annotated[int | None, Query(ge=0, le=MAX_INDEX, description="RLDS steps")] = None,
    terminated: Annotated[bool | None, Query(description="terminated or truncated")] = None,
    meta: Annotated[
        list[MetaCondition] | None,
        Query(
            max_length=queries.MAX_CONDITIONS,
            description=(
                "episode-metadata conditions <field><op><value>, op one of = != >= <= > <, e.g. "
                "meta=success=true&meta=episode_id>=10 (repeatable, at most "
                f"{queries.MAX_CONDITIONS}; all must hold)"
            ),
        ),
    ] = None,
    order_by: Annotated[
        OrderBy,
        Query(
            description="-x: descending; ties by split and index; a NaN or absent return comes last"
        ),
    ] = "index",
) -> Response:
    service: Service = request.app.state.service
    page = Pagination(limit, offset)
    for low, high, what in ((min_return, max_return, "return"), (min_length, max_length, "length")):
        if low is not None and high is not None and low > high:
            raise ApiError(
                400, "reversed_range", f"min_{what} ({low}) is greater than max_{what} ({high})"
            )

    def page_key(dataset: IndexedDataset) -> tuple:
        check_readable(dataset)
        if split is not None:
            resolve_split(dataset, split)
        if (min_return is not None or max_return is not None) and not dataset.has_returns:
            raise ApiError(
                400,
                "no_returns",
                f"dataset {name!r} has no scalar reward, so episodes have no return",
            )
        try:
            conditions = tuple(
                queries.Condition.parse(text, dataset.episode_fields) for text in meta or ()
            )
        except queries.FilterError as e:
            raise ApiError(400, "bad_filter", str(e)) from e
        # the only split is the same as every split, and lets the split's indexes work
        scope = (
            split if split is not None or len(dataset.splits) != 1 else next(iter(dataset.splits))
        )
        episode_filter = queries.EpisodeFilter(
            scope, min_return, max_return, min_length, max_length, terminated, conditions
        )
        return ("episodes", dataset.token, episode_filter, order_by, page.limit, page.offset)

    def work() -> bytes:
        with connect(service) as connection:
            dataset = find_dataset(service, connection, name)
            key = page_key(dataset)
            body = service.pages.get(key)
            if body is None:
                rows, total = queries.list_episodes(
                    connection,
                    dataset,
                    key[2],
                    order_by,
                    page.limit,
                    page.offset,
                    service.counts,
                    service.results,
                )
                document = {
                    "items": [presenters.episode_values(r) for r in rows],
                    "total": total,
                    "limit": page.limit,
                    "offset": page.offset,
                }
                body = service.pages.put(
                    key, json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
                )
            return body

    known = service.fresh_state(name)  # a page asked for a moment ago: no thread, no query
    body = service.pages.get(page_key(known)) if known is not None else None
    if body is not None:
        return Response(body, media_type="application/json")
    # filtered lists and deep pages run in the query pool, apart from details and reads
    filtered = (
        bool(meta)
        or offset >= queries.DIRECT_OFFSET
        or any(
            value is not None
            for value in (min_return, max_return, min_length, max_length, terminated)
        )
    )
    body = await (service.query_pool.run(work) if filtered else run_in_threadpool(work))
    return Response(body, media_type="application/json")


@router.get("/{index}", summary="one episode")
async def get_episode(
    name: DatasetName, service: ServiceDep, index: EpisodeIndex, split: SplitQuery = None
) -> EpisodeDetail:
    def work() -> EpisodeDetail:
        dataset, _, found = locate(service, name, split, index)
        return EpisodeDetail(
            **presenters.episode_values(found),
            dataset=dataset.name,
            layout=dataset.layout,
            step_fields=dataset.step_fields,
            image_fields=list(dataset.image_fields),
        )

    return await run_in_threadpool(work)
