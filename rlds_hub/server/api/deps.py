"""Dependencies of the routes: the service, database connections, the writer check, the
dataset named in the path, the split, pagination.

Routes are ``async`` and do their blocking work (database, files) in one worker-thread call
each; the dependencies here are ``async`` or plain helpers, so a request costs one thread
hand-off, not one per dependency.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, select
from sqlalchemy.exc import OperationalError

from rlds_hub.server.api import API_PREFIX
from rlds_hub.server.api.presenters import image_fields
from rlds_hub.server.core.errors import ApiError
from rlds_hub.server.index.discovery import NAME_PATTERN
from rlds_hub.server.index.queries import DATASETS
from rlds_hub.server.service import Service

MAX_LIMIT = 1000
MAX_OFFSET = 10**9
MAX_INDEX = 2**53  # episode and step positions (exact in every JSON client)
_bearer = HTTPBearer(auto_error=False, description="the token the server was started with")
# Read on every request (small), and the rest of what routes need, kept per generation.
_STATE_COLUMNS = [
    DATASETS.c[n] for n in ("id", "name", "path", "status", "error", "generation", "token")
]
_GENERATION_COLUMNS = [
    DATASETS.c[n] for n in ("num_episodes", "splits", "episode_fields", "features", "layout")
]


async def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


@contextlib.contextmanager
def connect(service: Service) -> Iterator[Connection]:
    """A connection to the index for a request's reads (statements stopped after the
    query timeout); 503 if the database does not answer."""
    try:
        connection = service.query_engine.connect()
    except OperationalError as e:
        raise ApiError(
            503, "index_unavailable", f"the index database does not answer: {e.orig or e}"
        ) from e
    with connection:
        yield connection


def writer_error(service: Service, authorization: str | None) -> ApiError | None:
    """Why a write with this ``Authorization`` header is refused (None: it is allowed).
    Writes need the configured bearer token; without one configured, none are allowed."""
    if not service.writes_enabled:
        return ApiError(
            403,
            "writes_disabled",
            "this server is read-only: start it with a token "
            "(RLDS_HUB_SERVER_TOKEN or --token-file) to allow writes",
        )
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return ApiError(
            401,
            "unauthorized",
            "send the token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = service.settings.token.get_secret_value()  # type: ignore[union-attr]
    if not hmac.compare_digest(credentials.encode(), expected.encode()):
        return ApiError(
            403,
            "forbidden",
            "the bearer token is wrong",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return None


async def require_writer(
    service: ServiceDep,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The same check as :class:`~rlds_hub.server.api.guard.RequestGuard` makes before the
    body is read (here it also puts the bearer scheme into the OpenAPI document)."""
    error = writer_error(service, request.headers.get("authorization"))
    if error is not None:
        raise error


Writer = Depends(require_writer)
DatasetName = Annotated[
    str,
    Path(pattern=NAME_PATTERN, description="the dataset's name", examples=["point_mass_expert"]),
]
# Split names as open_dataset accepts them (letters, digits, '_', '-', '.').
SPLIT_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
SplitQuery = Annotated[
    str | None,
    Query(
        max_length=128,
        pattern=SPLIT_PATTERN,
        description=("the split; default: train, or the only split"),
    ),
]


@dataclasses.dataclass(frozen=True)
class IndexedDataset:
    """What the routes need of a dataset's index row."""

    id: int
    name: str
    path: str
    status: str
    error: str | None
    generation: int
    token: str  # never reused: the key of everything kept about this state of the row
    num_episodes: int
    splits: dict[str, Any]
    episode_fields: dict[str, str]
    features: dict[str, Any]
    layout: str | None
    image_fields: tuple[str, ...]

    @property
    def step_fields(self) -> list[str]:
        return [entry["key"] for entry in self.features.get("steps", [])]

    @property
    def has_returns(self) -> bool:
        """True if the reward is a scalar number (episodes have returns)."""
        for entry in self.features.get("steps", []):
            if entry.get("key") == "reward":
                return entry.get("shape") == [] and entry.get("dtype") != "string"
        return False


def find_dataset(service: Service, connection: Connection, name: str) -> IndexedDataset:
    """The dataset called ``name``: its state as read less than ``state_seconds`` ago, or read
    now; the rest of its row kept per state of the row (its ``token``). 404 if the index has
    no such dataset."""
    known = service.fresh_state(name)
    if known is not None:
        return known
    state = connection.execute(select(*_STATE_COLUMNS).where(DATASETS.c.name == name)).first()
    if state is None:
        raise ApiError(
            404,
            "dataset_not_found",
            f"no dataset named {name!r}; list them at {API_PREFIX}/datasets",
        )
    key = ("dataset", state.token)
    rest = service.pages.get(key)
    if rest is None:
        row = connection.execute(
            select(*_GENERATION_COLUMNS).where(DATASETS.c.id == state.id)
        ).first()
        if row is None:
            raise ApiError(404, "dataset_not_found", f"dataset {name!r} was just removed")
        features = row.features or {}
        rest = service.pages.put(
            key,
            {
                "num_episodes": row.num_episodes,
                "splits": row.splits or {},
                "episode_fields": row.episode_fields or {},
                "features": features,
                "layout": row.layout,
                "image_fields": tuple(image_fields(features)),
            },
        )
    dataset = IndexedDataset(
        id=state.id,
        name=state.name,
        path=state.path,
        status=state.status,
        error=state.error,
        generation=state.generation,
        token=state.token,
        **rest,
    )
    service.remember_state(name, dataset)
    return dataset


def check_readable(dataset: Any) -> None:
    """409 with the reason for a dataset indexing never could read (no index to answer from)."""
    if not dataset.splits and getattr(dataset, "status", "ok") != "ok":
        raise ApiError(
            409, "dataset_unreadable", f"dataset {dataset.name!r} cannot be read: {dataset.error}"
        )


def resolve_split(dataset: Any, split: str | None) -> str:
    check_readable(dataset)
    splits = sorted(dataset.splits or {})
    if split is not None:
        if split not in splits:
            raise ApiError(
                404,
                "split_not_found",
                f"dataset {dataset.name!r} has no split {split!r}; its splits are "
                f"{', '.join(splits) or 'none'}",
            )
        return split
    if "train" in splits:
        return "train"
    if len(splits) == 1:
        return splits[0]
    if not splits:
        raise ApiError(404, "split_not_found", f"dataset {dataset.name!r} has no splits")
    raise ApiError(
        400,
        "split_required",
        f"dataset {dataset.name!r} has several splits ({', '.join(splits)}): pass split=",
    )


@dataclasses.dataclass(frozen=True)
class Pagination:
    limit: int
    offset: int


async def pagination(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")] = 0,
) -> Pagination:
    return Pagination(limit, offset)


PaginationDep = Annotated[Pagination, Depends(pagination)]
# The same parameters for routes that take them directly (one dependency less to solve on
# the hottest route).
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]
