"""Dependencies of the routes: the service, a database connection, the writer check, the
dataset named in the path, the split, pagination."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, select
from sqlalchemy.exc import OperationalError

from rlds_hub.server.core.errors import ApiError
from rlds_hub.server.index.discovery import NAME_PATTERN
from rlds_hub.server.index.queries import DATASETS
from rlds_hub.server.service import Service

MAX_LIMIT = 1000
MAX_OFFSET = 10**9
MAX_INDEX = 2**53  # episode and step positions (exact in every JSON client)
_bearer = HTTPBearer(auto_error=False, description="the token the server was started with")
# The columns routes other than the dataset detail need (the big JSON documents stay out).
_ROUTE_COLUMNS = [DATASETS.c[name] for name in (
    "id", "name", "path", "status", "error", "generation", "num_episodes", "splits",
    "episode_fields", "features", "layout",
)]


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def get_connection(service: ServiceDep) -> Iterator[Connection]:
    try:
        connection = service.engine.connect()
    except OperationalError as e:
        raise ApiError(503, "index_unavailable",
                       f"the index database does not answer: {e.orig or e}") from e
    with connection:
        yield connection


ConnectionDep = Annotated[Connection, Depends(get_connection)]


def require_writer(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Writes need the configured bearer token; without one configured, none are allowed."""
    if not service.writes_enabled:
        raise ApiError(403, "writes_disabled",
                       "this server is read-only: start it with a token "
                       "(RLDS_HUB_SERVER_TOKEN or --token-file) to allow writes")
    if credentials is None:
        raise ApiError(401, "unauthorized", "send the token as 'Authorization: Bearer <token>'",
                       headers={"WWW-Authenticate": "Bearer"})
    expected = service.settings.token.get_secret_value()  # type: ignore[union-attr]
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise ApiError(403, "forbidden", "the bearer token is wrong",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


Writer = Depends(require_writer)
DatasetName = Annotated[str, Path(pattern=NAME_PATTERN, description="the dataset's name",
                                  examples=["point_mass_expert"])]


def dataset_row(name: DatasetName, connection: ConnectionDep) -> Any:
    """The index row of the dataset in the path (a few columns); 404 if unknown."""
    row = connection.execute(select(*_ROUTE_COLUMNS).where(DATASETS.c.name == name)).first()
    if row is None:
        raise ApiError(404, "dataset_not_found",
                       f"no dataset named {name!r}; list them at /api/v1/datasets")
    return row


DatasetRowDep = Annotated[Any, Depends(dataset_row)]
SplitQuery = Annotated[str | None, Query(max_length=128, description=(
    "the split; default: train, or the only split"))]


def resolve_split(row: Any, split: str | None) -> str:
    splits = sorted(row.splits or {})
    if split is not None:
        if split not in splits:
            raise ApiError(404, "split_not_found",
                           f"dataset {row.name!r} has no split {split!r}; its splits are "
                           f"{', '.join(splits) or 'none'}")
        return split
    if "train" in splits:
        return "train"
    if len(splits) == 1:
        return splits[0]
    if not splits:
        raise ApiError(404, "split_not_found", f"dataset {row.name!r} has no splits")
    raise ApiError(400, "split_required",
                   f"dataset {row.name!r} has several splits ({', '.join(splits)}): pass split=")


class Pagination:
    def __init__(self, limit: int, offset: int):
        self.limit = limit
        self.offset = offset


def pagination(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")] = 0,
) -> Pagination:
    return Pagination(limit, offset)


PaginationDep = Annotated[Pagination, Depends(pagination)]
