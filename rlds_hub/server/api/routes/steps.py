"""``/api/v1/datasets/{name}/episodes/{index}/steps``: a slice of steps as JSON, Arrow IPC or
NPZ (see :mod:`rlds_hub.server.reading.steps`).

Every slice first reserves its bytes (the decoded episode's fields and the slice) from the
process's bulk budget — waiting up to ``bulk_wait_seconds``, then 503 ``busy`` with
``Retry-After`` — and is streamed in chunks; the reservation ends with the response."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from rlds_hub.format.plan import LeafKind
from rlds_hub.server.api import reads
from rlds_hub.server.api.deps import MAX_INDEX, DatasetName, ServiceDep, SplitQuery
from rlds_hub.server.api.schemas.common import error_responses
from rlds_hub.server.api.schemas.episodes import StepsSlice
from rlds_hub.server.core.errors import ApiError
from rlds_hub.server.reading import steps
from rlds_hub.server.service import Service

router = APIRouter(
    prefix="/datasets/{name}/episodes/{index}",
    tags=["steps"],
    responses=error_responses(400, 404, 409, 413, 422, 503),
)
EpisodeIndex = Annotated[int, Path(ge=0, le=MAX_INDEX, description="position in the split")]
Position = Annotated[
    int | None,
    Query(ge=-MAX_INDEX, le=MAX_INDEX, description=("step position; negative counts from the end")),
]
_BULK = {
    "content": {
        steps.MEDIA_TYPES["arrow"]: {"schema": {"type": "string", "format": "binary"}},
        steps.MEDIA_TYPES["npz"]: {"schema": {"type": "string", "format": "binary"}},
    },
    "description": "JSON (see the schema), an Arrow IPC stream, or an NPZ archive",
}


@router.get(
    "/steps",
    summary="a slice of steps (JSON, Arrow IPC or NPZ)",
    response_model=StepsSlice,
    responses={200: _BULK},
)
async def get_steps(
    name: DatasetName,
    service: ServiceDep,
    index: EpisodeIndex,
    split: SplitQuery = None,
    start: Position = None,
    stop: Position = None,
    fields: Annotated[
        str | None,
        Query(
            max_length=4096,
            description=(
                "comma-separated step fields or prefixes (observation, observation/position, reward);"
                " default: every field (JSON: every field but images)"
            ),
        ),
    ] = None,
    format: Annotated[
        Literal["json", "arrow", "npz"],
        Query(description=("json for small slices; arrow or npz for bulk")),
    ] = "json",
) -> Response:
    wanted = [f for f in fields.split(",") if f.strip()] if fields else None
    budget = service.bulk_budget
    request, reserved, opened = await run_in_threadpool(
        _start, service, name, index, split, start, stop, wanted, format
    )
    if opened is None:  # no room now: wait on the event loop, holding no thread
        reserved = await budget.reserve(request.reserve_bytes, service.settings.bulk_wait_seconds)
        try:
            opened = await run_in_threadpool(_open, service, request)
        except BaseException:
            budget.release(reserved)
            raise
    chunks, first = opened
    return _BudgetedStream(
        _rest(first, chunks, single=format == "json"),
        lambda: budget.release(reserved),
        chunks.close,
        media_type=steps.MEDIA_TYPES[format],
        headers=request.headers,
    )


def _start(
    service: Service,
    name: str,
    index: int,
    split: str | None,
    start: int | None,
    stop: int | None,
    wanted: list[str] | None,
    format: str,
) -> tuple[_Slice, int, Any]:
    """The checked request, and when its bytes are free at once (the common case, one
    thread hop) the reservation and the opened stream."""
    request = _prepare(service, name, index, split, start, stop, wanted, format)
    reserved = service.bulk_budget.try_reserve(request.reserve_bytes)
    if reserved is None:
        return request, 0, None
    try:
        return request, reserved, _open(service, request)
    except BaseException:
        service.bulk_budget.release(reserved)
        raise


@dataclasses.dataclass(frozen=True)
class _Slice:
    dataset: Any
    split: str
    index: int
    format: str
    leaves: list[Any]
    begin: int
    end: int
    header: dict[str, Any]
    headers: dict[str, str]
    reserve_bytes: int


def _prepare(
    service: Service,
    name: str,
    index: int,
    split: str | None,
    start: int | None,
    stop: int | None,
    wanted: list[str] | None,
    format: str,
) -> _Slice:
    """Checks the request against the index and the limits (no episode is read yet)."""
    dataset, split, episode = reads.locate(service, name, split, index)
    plan = reads.plan(service, dataset)
    try:
        leaves = steps.step_leaves(plan, wanted, allow_images=format != "json")
        begin, end = steps.resolve_range(start, stop, episode.length)
    except steps.SliceError as e:
        raise ApiError(400, "bad_slice", str(e)) from e
    if not leaves:
        raise ApiError(400, "bad_slice", "no step fields to send (name some with fields=)")
    truncated = False
    limit = service.settings.max_json_steps
    if format == "json" and end - begin > limit:
        if stop is not None:
            raise ApiError(
                413,
                "slice_too_large",
                f"JSON slices hold at most {limit} steps (asked {end - begin}): "
                "page with start/stop, or use format=arrow",
            )
        end, truncated = begin + limit, True
    estimate = (end - begin) * sum(
        leaf.size * leaf.dtype.itemsize for leaf in leaves if leaf.kind != LeafKind.STRING
    )
    _check_size(service, estimate)
    header = {"dataset": dataset.name, "split": split, "index": index, "length": episode.length}
    if format == "json":
        header["truncated"] = truncated
    filename = f"{dataset.name.replace(':', '_')}-{split}-{index}-{begin}-{end}.{format}"
    headers = (
        {} if format == "json" else {"Content-Disposition": f'attachment; filename="{filename}"'}
    )
    # the episode's fields are decoded whole; JSON text takes a few times the arrays
    slice_bytes = steps.step_bytes(leaves) * (end - begin)
    reserve = (
        steps.step_bytes(leaves) * episode.length
        + 2**16
        + (4 * slice_bytes if format == "json" else min(2 * slice_bytes, 2 * steps.CHUNK_BYTES))
    )
    return _Slice(dataset, split, index, format, leaves, begin, end, header, headers, reserve)


def _check_size(service: Service, size: int) -> None:
    if size > service.settings.max_bulk_bytes:
        raise ApiError(
            413,
            "slice_too_large",
            f"the slice holds {size:,} bytes, more than the limit of "
            f"{service.settings.max_bulk_bytes:,}: ask for fewer steps or fields",
        )


def _open(service: Service, request: _Slice) -> tuple[Generator[bytes, None, None], bytes]:
    """Reads the episode and encodes the first chunk (so that a slice that cannot be
    encoded is a 4xx before the response starts)."""
    arrays = reads.read_arrays(
        service,
        request.dataset,
        request.split,
        request.index,
        [leaf.key for leaf in request.leaves],
    )
    _check_size(service, steps.slice_bytes(arrays, request.leaves, request.begin, request.end))
    chunks = steps.stream(
        request.format, arrays, request.leaves, request.header, request.begin, request.end
    )
    try:
        return chunks, next(chunks)
    except steps.SliceError as e:
        raise ApiError(400, "bad_slice", str(e)) from e


async def _rest(first: bytes, chunks: Generator[bytes, None, None], *, single: bool) -> Any:
    yield first
    while not single:  # each chunk is encoded in a worker thread
        chunk = await run_in_threadpool(next, chunks, None)
        if chunk is None:
            return
        yield chunk


class _BudgetedStream(StreamingResponse):
    """A streamed response that ends its budget reservation however it ends (sent,
    failed, or the client went away)."""

    def __init__(self, content: Any, release: Any, close: Any, **kwargs: Any):
        super().__init__(content, **kwargs)
        self._release = release
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                self._close()
            finally:
                self._release()
