"""The first thing every request meets (ASGI middleware), before routing and before any of
its body is read:

- a NUL character in the path, the query string (``%00``) or a JSON body is refused with 400
  ``nul_character``: no parameter accepts one, and databases either refuse NUL (PostgreSQL)
  or compare it oddly (SQLite);
- a write (any method but GET, HEAD and OPTIONS) without the right bearer token is refused
  (401/403) before a byte of its body is read;
- a body larger than ``max_request_bytes`` is refused with 413 — at once when its
  ``Content-Length`` says so, otherwise as soon as it passes the limit.

A body that passes is read whole (it is small) and handed to the app as it came.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rlds_hub.server.api.deps import writer_error
from rlds_hub.server.core.config import ENV_PREFIX
from rlds_hub.server.core.errors import ApiError, error_response
from rlds_hub.server.service import Service

READS = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestGuard:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, service: Service):
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            _check_url(scope)
            if scope["method"] in READS:
                await self.app(scope, receive, send)
                return
            error = writer_error(self.service, _header(scope, b"authorization"))
            if error is not None:
                raise error
            body = await self._body(scope, receive)
            if body is None:
                return  # the client went away
            _check_json(scope, body)
        except ApiError as error:
            response = error_response(error.status, error.code, error.message, error.headers)
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        limit = self.service.settings.max_request_bytes
        announced = _header(scope, b"content-length")
        if announced is not None and announced.strip().isdigit() and int(announced) > limit:
            raise _too_large(int(announced), limit)
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(None, limit)
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _nul_error(where: str) -> ApiError:
    return ApiError(
        400,
        "nul_character",
        f"the request's {where} holds a NUL character (\\x00, %00), which no "
        "parameter accepts: remove it",
    )


def _check_url(scope: Scope) -> None:
    if "\x00" in scope["path"]:
        raise _nul_error("path")
    if b"\x00" in unquote_to_bytes(scope["query_string"]):
        raise _nul_error("query string")


def _check_json(scope: Scope, body: bytes) -> None:
    content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    if not body or not (content_type == "application/json" or content_type.endswith("+json")):
        return
    try:
        document = json.loads(body)
    except ValueError:
        return  # the route says what is wrong with it
    if _holds_nul(document):
        raise _nul_error("JSON body")


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _too_large(announced: int | None, limit: int) -> ApiError:
    size = f"{announced:,} bytes" if announced is not None else "more"
    return ApiError(
        413,
        "too_large",
        f"the request body ({size}) is larger than the server's limit of "
        f"{limit:,} bytes (setting {ENV_PREFIX}MAX_REQUEST_BYTES)",
    )
