"""Errors as JSON with one shape everywhere: ``{"error": {"code": ..., "message": ...}}``.

Client mistakes get a 4xx with a message that says what was wrong and how to fix it:
400 a bad combination of parameters, 401/403 writes without (the right) token, 404 an
unknown dataset, episode or route, 409 a dataset the index knows but cannot read now,
413 a slice larger than the limits, 422 a parameter of the wrong type or range.
A failing index database is a 503 ``index_unavailable`` (a statement stopped by the
statement timeout: 503 ``query_timeout``), never with SQL text.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from rlds_hub.server.api import API_PREFIX
from rlds_hub.server.index import database

log = logging.getLogger("rlds_hub.server")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}


class ApiError(Exception):
    """An error response: HTTP ``status``, a stable ``code`` and a readable ``message``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def database_error_response(error: SQLAlchemyError) -> JSONResponse:
    """503 for the index database's failures (no SQL text); 400 for a value it refused."""
    reason = database.describe_error(error)
    if database.is_timeout(error):
        return error_response(
            503,
            "query_timeout",
            "the query ran longer than the "
            "server's statement timeout and was stopped: ask for fewer "
            "conditions, or try again later",
            {"Retry-After": "5"},
        )
    if isinstance(error, DataError):
        return error_response(400, "bad_value", f"the index refused a value: {reason}")
    log.warning("index database error: %s", reason)
    return error_response(
        503,
        "index_unavailable",
        f"the index database failed ({reason}); see /readyz",
        {"Retry-After": "5"},
    )


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        if item.get("type") == "json_invalid":
            position = item.get("loc", ("body", 0))[-1]
            reason = (item.get("ctx") or {}).get("error", "not JSON")
            parts.append(
                f"the request body is not valid JSON ({reason} at character "
                f"{position}): send a JSON object with Content-Type: "
                "application/json"
            )
            continue
        if tuple(item.get("loc", ())) == ("body",) and item.get("type") in (
            "model_attributes_type",
            "dict_type",
            "missing",
        ):
            parts.append(
                "the request body must be a JSON object sent with Content-Type: application/json"
            )
            continue
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app accepts at the request's path (the router's own
    405 names only the first route that matched the path)."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _validation_message(error))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "error")
        message = str(error.detail) if error.detail else code.replace("_", " ")
        if error.status_code == 404 and message == "Not Found":
            message = f"no such path: {request.url.path} (the API is under {API_PREFIX}; see /docs)"
        headers = getattr(error, "headers", None)
        if error.status_code == 405:
            allowed = _allowed_methods(request)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            message = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
        return error_response(error.status_code, code, message, headers)

    @app.exception_handler(SQLAlchemyError)
    async def _database(request: Request, error: SQLAlchemyError) -> JSONResponse:
        return database_error_response(error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(
            500, "internal_error", f"the server failed ({type(error).__name__}); see its log"
        )
