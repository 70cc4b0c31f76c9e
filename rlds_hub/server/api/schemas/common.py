"""Shapes shared by every resource: errors and pages."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

Item = TypeVar("Item")


class ErrorBody(BaseModel):
    code: str = Field(description="a stable machine-readable code, e.g. not_found")
    message: str = Field(description="what was wrong and how to fix it")


class ErrorResponse(BaseModel):
    error: ErrorBody


class Page(BaseModel, Generic[Item]):
    """One page of a list."""

    items: list[Item]
    total: int = Field(description="items matching the request, over all pages")
    limit: int
    offset: int


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for error statuses (all share :class:`ErrorResponse`)."""
    descriptions = {
        400: "the parameters do not fit together or this dataset, or hold a NUL character",
        401: "writes need a bearer token (Authorization: Bearer ...)",
        403: "the token is wrong, or writes are disabled",
        404: "unknown dataset, episode or path",
        409: "the dataset is indexed but cannot be read now (moved, deleted or damaged)",
        413: "the answer would exceed the service's size limits, or the request body is too large",
        422: "a parameter has the wrong type or is out of range",
        503: "the index database is not ready or unavailable, or the service is busy (Retry-After)",
    }
    return {
        status: {"model": ErrorResponse, "description": descriptions[status]} for status in statuses
    }
