"""``/api/v1/datasets/{name}/episodes``: filtered, ordered pages of episodes, and one episode."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from rlds_hub.server.api import convert
from rlds_hub.server.api.deps import (
    MAX_INDEX,
    ConnectionDep,
    DatasetRowDep,
    PaginationDep,
    ServiceDep,
    SplitQuery,
    resolve_split,
)
from rlds_hub.server.api.schemas.common import Page, error_responses
from rlds_hub.server.api.schemas.episodes import EpisodeDetail, EpisodeItem
from rlds_hub.server.core.errors import ApiError
from rlds_hub.server.index import queries

router = APIRouter(prefix="/api/v1/datasets/{name}/episodes", tags=["episodes"],
                   responses=error_responses(400, 404, 422))
OrderBy = Literal["index", "-index", "length", "-length", "return", "-return"]
EpisodeIndex = Annotated[int, Path(ge=0, le=MAX_INDEX, description="position in the split")]
_BOUND = 1e300


@router.get("", summary="episodes, filtered and ordered")
def list_episodes(
    row: DatasetRowDep,
    connection: ConnectionDep,
    service: ServiceDep,
    page: PaginationDep,
    split: Annotated[str | None, Query(max_length=128, description="only this split")] = None,
    min_return: Annotated[float | None, Query(ge=-_BOUND, le=_BOUND)] = None,
    max_return: Annotated[float | None, Query(ge=-_BOUND, le=_BOUND)] = None,
    min_length: Annotated[int | None, Query(ge=0, le=MAX_INDEX, description="RLDS steps")] = None,
    max_length: Annotated[int | None, Query(ge=0, le=MAX_INDEX, description="RLDS steps")] = None,
    terminated: Annotated[bool | None, Query(description="terminated or truncated")] = None,
    meta: Annotated[list[str] | None, Query(max_length=16, description=(
        "episode-metadata conditions <field><op><value>, op one of = != >= <= > <, e.g. "
        "meta=success=true&meta=episode_id>=10 (repeatable; all must hold)"))] = None,
    order_by: Annotated[OrderBy, Query(description="-x: descending; ties by split and "
                                       "index; a NaN or absent return comes last")] = "index",
) -> Page[EpisodeItem]:
    if split is not None:
        resolve_split(row, split)
    for low, high, what in ((min_return, max_return, "return"),
                            (min_length, max_length, "length")):
        if low is not None and high is not None and low > high:
            raise ApiError(400, "reversed_range",
                           f"min_{what} ({low}) is greater than max_{what} ({high})")
    if (min_return is not None or max_return is not None) and not _has_returns(row):
        raise ApiError(400, "no_returns",
                       f"dataset {row.name!r} has no scalar reward, so episodes have no return")
    try:
        conditions = tuple(queries.Condition.parse(text, row.episode_fields or {})
                           for text in meta or ())
    except queries.FilterError as e:
        raise ApiError(400, "bad_filter", str(e)) from e
    episode_filter = queries.EpisodeFilter(split, min_return, max_return, min_length,
                                           max_length, terminated, conditions)
    rows, total = queries.list_episodes(connection, row, episode_filter, order_by, page.limit,
                                        page.offset, service.counts)
    return Page[EpisodeItem](items=[convert.episode_item(r) for r in rows], total=total,
                             limit=page.limit, offset=page.offset)


def _has_returns(row: object) -> bool:
    features = getattr(row, "features", None) or {}
    for entry in features.get("steps", []):
        if entry.get("key") == "reward":
            return entry.get("shape") == [] and entry.get("dtype") != "string"
    return False


@router.get("/{index}", summary="one episode")
def get_episode(row: DatasetRowDep, connection: ConnectionDep, index: EpisodeIndex,
                split: SplitQuery = None) -> EpisodeDetail:
    split = resolve_split(row, split)
    found = queries.episode(connection, row.id, split, index)
    if found is None:
        count = (row.splits or {}).get(split, {}).get("episodes", 0)
        raise ApiError(404, "episode_not_found",
                       f"dataset {row.name!r} split {split!r} has {count} episodes "
                       f"(0..{count - 1}); there is no episode {index}")
    steps = (row.features or {}).get("steps", [])
    return EpisodeDetail(
        **convert.episode_values(found), dataset=row.name, layout=row.layout,
        step_fields=[entry["key"] for entry in steps],
        image_fields=[entry["key"] for entry in steps if convert.is_image_entry(entry)],
    )

