"""Image observations of an episode: one frame as PNG, an animation, a filmstrip."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from rlds_hub.format.plan import Leaf
from rlds_hub.server.api import reads
from rlds_hub.server.api.deps import (
    MAX_INDEX,
    DatasetName,
    IndexedDataset,
    ServiceDep,
    SplitQuery,
)
from rlds_hub.server.api.schemas.common import error_responses
from rlds_hub.server.core.errors import ApiError
from rlds_hub.server.reading import maps, media
from rlds_hub.server.reading.steps import SliceError, is_image, resolve_range
from rlds_hub.server.reading.stored_frames import servable_jpeg, stored_frames
from rlds_hub.server.service import Service

router = APIRouter(
    prefix="/datasets/{name}/episodes/{index}",
    tags=["media"],
    responses=error_responses(400, 404, 409, 413, 422, 503),
)
EpisodeIndex = Annotated[int, Path(ge=0, le=MAX_INDEX, description="position in the split")]
FieldQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=1024,
        description=("the image field (e.g. observation/image); default: the first one"),
    ),
]
Position = Annotated[
    int | None,
    Query(ge=-MAX_INDEX, le=MAX_INDEX, description=("step position; negative counts from the end")),
]
Every = Annotated[int, Query(ge=1, le=MAX_INDEX, description="use every n-th frame")]


def _binary(*media_types: str) -> dict[int | str, dict[str, Any]]:
    content = {t: {"schema": {"type": "string", "format": "binary"}} for t in media_types}
    return {200: {"content": content, "description": "the image"}}


def _image_leaf(service: Service, dataset: IndexedDataset, field: str | None) -> Leaf:
    leaves = reads.plan(service, dataset).step_leaves
    images = [leaf for leaf in leaves if is_image(leaf)] + [
        leaf for leaf in leaves if maps.is_map(leaf)
    ]  # depth maps, coloured
    if not images:
        raise ApiError(
            404, "no_images", f"dataset {dataset.name!r} has no image observations (nor depth maps)"
        )
    if field is None:
        return images[0]
    name = field.strip("/").removeprefix("steps/")
    for leaf in images:
        if leaf.name == name:
            return leaf
    raise ApiError(
        404,
        "not_an_image",
        f"field={field!r} is not an image field of {dataset.name!r}; its image "
        f"fields (and depth maps) are {', '.join(leaf.name for leaf in images)}",
    )


def _frames(
    service: Service, name: str, index: int, split: str | None, field: str | None
) -> np.ndarray:
    dataset, split, _ = reads.locate(service, name, split, index)
    leaf = _image_leaf(service, dataset, field)
    frames = reads.read_arrays(service, dataset, split, index, [leaf.key])[leaf.key]
    return maps.colour(frames) if maps.is_map(leaf) else frames


def _frames_bytes(
    service: Service, name: str, index: int, split: str | None, field: str | None
) -> int:
    """What an animation or filmstrip of the episode holds in memory at most: its frames
    decoded, and as much again for the pictures being encoded."""
    dataset, split, episode = reads.locate(service, name, split, index)
    leaf = _image_leaf(service, dataset, field)
    return 2 * episode.length * leaf.size * max(leaf.dtype.itemsize, 1)


async def _budgeted(
    service: Service,
    work: Any,
    name: str,
    index: int,
    split: str | None,
    field: str | None,
    *args: Any,
) -> bytes:
    """``work(service, name, index, split, field, *args)`` in a worker thread, holding its
    bytes from the bulk budget (waiting for them on the event loop; 503 busy after
    ``bulk_wait_seconds``)."""
    size = await run_in_threadpool(_frames_bytes, service, name, index, split, field)
    budget = service.bulk_budget
    reserved = await budget.reserve(size, service.settings.bulk_wait_seconds)
    try:
        return await run_in_threadpool(work, service, name, index, split, field, *args)
    finally:
        budget.release(reserved)


def _range(
    frames: np.ndarray, start: int | None, stop: int | None, every: int, limit: int
) -> np.ndarray:
    try:
        begin, end = resolve_range(start, stop, len(frames))
    except SliceError as e:
        raise ApiError(400, "bad_slice", str(e)) from e
    chosen = frames[begin:end:every]
    if len(chosen) == 0:
        raise ApiError(400, "bad_slice", "the range holds no frames")
    if len(chosen) > limit:
        raise ApiError(
            413,
            "too_many_frames",
            f"{len(chosen)} frames exceed the limit of {limit}: use every= or a "
            "shorter start/stop range",
        )
    return chosen


def _frame(
    service: Service, name: str, index: int, step: int, split: str | None, field: str | None
) -> tuple[bytes, str]:
    """The frame's bytes and media type: a JPEG frame as stored, anything else as PNG."""
    dataset, split, _ = reads.locate(service, name, split, index)
    leaf = _image_leaf(service, dataset, field)
    stored = stored_frames(service.reader, dataset, split, index, leaf)
    frames: Any = (
        stored
        if stored is not None
        else reads.read_arrays(service, dataset, split, index, [leaf.key])[leaf.key]
    )
    if not -len(frames) <= step < len(frames):
        raise ApiError(
            404,
            "step_not_found",
            f"episode {index} has {len(frames)} steps (0..{len(frames) - 1}); "
            f"there is no step {step}",
        )
    if stored is not None:
        if servable_jpeg(stored[step], leaf):
            return stored[step], "image/jpeg"
        frames = reads.read_arrays(service, dataset, split, index, [leaf.key])[leaf.key]
    if maps.is_map(leaf):
        return media.frame_png(maps.colour(frames[step][None], over=frames)[0]), "image/png"
    return media.frame_png(frames[step]), "image/png"


@router.get(
    "/frames/{step}",
    summary="one image observation: JPEG frames as stored, others as PNG",
    response_class=Response,
    responses=_binary("image/png", "image/jpeg"),
)
async def get_frame(
    name: DatasetName,
    service: ServiceDep,
    index: EpisodeIndex,
    step: Annotated[
        int,
        Path(
            ge=-MAX_INDEX, le=MAX_INDEX, description=("step position; negative counts from the end")
        ),
    ],
    split: SplitQuery = None,
    field: FieldQuery = None,
) -> Response:
    body, media_type = await run_in_threadpool(_frame, service, name, index, step, split, field)
    return Response(body, media_type=media_type, headers={"Cache-Control": "private, max-age=300"})


def _animation(
    service: Service,
    name: str,
    index: int,
    split: str | None,
    field: str | None,
    start: int | None,
    stop: int | None,
    every: int,
    fps: float,
    format: str,
) -> bytes:
    frames = _frames(service, name, index, split, field)
    chosen = _range(frames, start, stop, every, service.settings.max_animation_frames)
    try:
        return media.animation(chosen, fps, format)
    except media.MediaError as e:
        raise ApiError(e.status, e.code, str(e)) from e


@router.get(
    "/animation",
    summary="the image observations as an animation",
    response_class=Response,
    responses=_binary("image/apng", "image/gif", "image/webp"),
)
async def get_animation(
    name: DatasetName,
    service: ServiceDep,
    index: EpisodeIndex,
    split: SplitQuery = None,
    field: FieldQuery = None,
    start: Position = None,
    stop: Position = None,
    every: Every = 1,
    fps: Annotated[
        float,
        Query(
            ge=media.MIN_FPS,
            le=media.MAX_FPS,
            description=(f"frames per second, {media.MIN_FPS:g} to {media.MAX_FPS:g}"),
        ),
    ] = 10.0,
    format: Annotated[
        Literal["apng", "gif", "webp"],
        Query(description=("apng and webp are lossless; gif has 256 colours per frame")),
    ] = "apng",
) -> Response:
    body = await _budgeted(
        service, _animation, name, index, split, field, start, stop, every, fps, format
    )
    return Response(body, media_type=media.MEDIA_TYPES[format])


def _filmstrip(
    service: Service,
    name: str,
    index: int,
    split: str | None,
    field: str | None,
    start: int | None,
    stop: int | None,
    every: int,
    columns: int,
) -> bytes:
    frames = _frames(service, name, index, split, field)
    chosen = _range(frames, start, stop, every, service.settings.max_animation_frames)
    try:
        return media.filmstrip(chosen, columns)
    except media.MediaError as e:
        raise ApiError(413, "too_large", str(e)) from e


@router.get(
    "/filmstrip",
    summary="the image observations as one PNG grid",
    response_class=Response,
    responses=_binary("image/png"),
)
async def get_filmstrip(
    name: DatasetName,
    service: ServiceDep,
    index: EpisodeIndex,
    split: SplitQuery = None,
    field: FieldQuery = None,
    start: Position = None,
    stop: Position = None,
    every: Every = 1,
    columns: Annotated[int, Query(ge=1, le=256)] = 10,
) -> Response:
    body = await _budgeted(
        service, _filmstrip, name, index, split, field, start, stop, every, columns
    )
    return Response(body, media_type="image/png")
