"""A cache of whole responses in front of the app, for the two reads viewers repeat most: a
dataset's detail and its episode pages.

A request asked for again while the process still trusts what it last read of the dataset's
index row (``state_seconds``; the same rule the routes use) is answered with the bytes sent
the last time — without routing, parameter parsing, a thread or a query. FastAPI's parsing of
the episode list's eleven query parameters alone costs about twice the trivial endpoint.
Only 200 answers are kept, under the raw path and query string and the dataset row's token
(never reused) and status, in their own least-recently-used store of ``page_cache_bytes``
(apart from the routes' caches, so that many distinct pages do not push out what the routes
keep; a page's body is usually the very bytes object the route keeps, so it is not held twice).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rlds_hub.server.api import API_PREFIX
from rlds_hub.server.core.cache import LRUCache
from rlds_hub.server.service import Service

_CACHED = re.compile(rf"^{re.escape(API_PREFIX)}/datasets/([^/]+)(?:/episodes)?$")


class ResponseCache:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, service: Service):
        self.app = app
        self.service = service
        self.kept: LRUCache[tuple] = LRUCache(
            service.settings.page_cache_bytes, lambda entry: len(entry[2]) + 512
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _CACHED.match(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        name = unquote(match.group(1))
        before = _version(self.service.fresh_state(name))
        key = (scope["path"], scope["query_string"])
        if before is not None:
            kept = self.kept.get(key)
            if kept is not None and kept[0] == before:
                await send(kept[1])
                await send({"type": "http.response.body", "body": kept[2]})
                return
        start: dict[str, Any] = {}
        body: list[bytes] = []

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, keep)
        after = _version(self.service.fresh_state(name))
        # Kept only when the answer certainly belongs to one state of the dataset.
        if start.get("status") == 200 and after is not None and after == before:
            self.kept.put(key, (after, dict(start), b"".join(body)))


def _version(state: Any) -> tuple | None:
    return None if state is None else (state.token, state.status)
