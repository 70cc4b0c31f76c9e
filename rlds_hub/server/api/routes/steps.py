"""``/api/v1/datasets/{name}/episodes/{index}/steps``: a slice of steps as JSON, Arrow IPC or
NPZ (see :mod:`rlds_hub.server.reading.steps`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from rlds_hub.server.api import reads
from rlds_hub.server.api.deps import MAX_INDEX, DatasetName, ServiceDep, SplitQuery
from rlds_hub.server.api.schemas.common import error_responses
from rlds_hub.server.api.schemas.episodes import StepsSlice
from rlds_hub.server.core.errors import ApiError
from rlds_hub.server.reading import steps
from rlds_hub.server.service import Service

router = APIRouter(prefix="/api/v1/datasets/{name}/episodes/{index}", tags=["steps"],
                   responses=error_responses(400, 404, 409, 413, 422))
EpisodeIndex = Annotated[int, Path(ge=0, le=MAX_INDEX, description="position in the split")]
Position = Annotated[int | None, Query(ge=-MAX_INDEX, le=MAX_INDEX, description=(
    "step position; negative counts from the end"))]
_BULK = {
    "content": {
        steps.MEDIA_TYPES["arrow"]: {"schema": {"type": "string", "format": "binary"}},
        steps.MEDIA_TYPES["npz"]: {"schema": {"type": "string", "format": "binary"}},
    },
    "description": "JSON (see the schema), an Arrow IPC stream, or an NPZ archive",
}


@router.get("/steps", summary="a slice of steps (JSON, Arrow IPC or NPZ)",
            response_model=StepsSlice, responses={200: _BULK})
async def get_steps(
    name: DatasetName,
    service: ServiceDep,
    index: EpisodeIndex,
    split: SplitQuery = None,
    start: Position = None,
    stop: Position = None,
    fields: Annotated[str | None, Query(max_length=4096, description=(
        "comma-separated step fields or prefixes (observation, observation/position, reward);"
        " default: every field (JSON: every field but images)"))] = None,
    format: Annotated[Literal["json", "arrow", "npz"], Query(description=(
        "json for small slices; arrow or npz for bulk"))] = "json",
) -> Response:
    wanted = [f for f in fields.split(",") if f.strip()] if fields else None
    return await run_in_threadpool(_steps, service, name, index, split, start, stop, wanted,
                                   format)


def _steps(service: Service, name: str, index: int, split: str | None, start: int | None,
           stop: int | None, wanted: list[str] | None, format: str) -> Response:
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
            raise ApiError(413, "slice_too_large",
                           f"JSON slices hold at most {limit} steps (asked {end - begin}): "
                           "page with start/stop, or use format=arrow")
        end, truncated = begin + limit, True
    estimate = (end - begin) * sum(leaf.size * leaf.dtype.itemsize for leaf in leaves
                                   if leaf.kind != "string")
    arrays = {} if estimate > service.settings.max_bulk_bytes else reads.read_arrays(
        service, dataset, split, index, [leaf.key for leaf in leaves])
    size = estimate if not arrays else steps.slice_bytes(arrays, leaves, begin, end)
    if size > service.settings.max_bulk_bytes:
        raise ApiError(413, "slice_too_large",
                       f"the slice holds {size:,} bytes, more than the limit of "
                       f"{service.settings.max_bulk_bytes:,}: ask for fewer steps or fields")
    header = {"dataset": dataset.name, "split": split, "index": index,
              "length": episode.length}
    if format == "json":
        header["truncated"] = truncated
    try:
        body = steps.ENCODERS[format](arrays, leaves, header, begin, end)
    except steps.SliceError as e:
        raise ApiError(400, "bad_slice", str(e)) from e
    filename = f"{dataset.name.replace(':', '_')}-{split}-{index}-{begin}-{end}.{format}"
    headers = {} if format == "json" else {
        "Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body, media_type=steps.MEDIA_TYPES[format], headers=headers)
