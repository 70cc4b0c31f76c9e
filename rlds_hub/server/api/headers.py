"""Protective response headers (ASGI middleware): ``X-Content-Type-Options: nosniff`` on
every response, and on the viewer's pages and files a Content-Security-Policy that lets
them load only the server's own scripts and talk only to the server, and keeps other sites
from framing them. The API documentation pages (``/docs``, ``/redoc``) start their
(locally served) bundles with an inline script, which their policy allows."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_NOSNIFF = (b"x-content-type-options", b"nosniff")
_VIEWER_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_DOCS = ("/docs", "/redoc", "/docs-assets/")


def _policy(path: str) -> bytes | None:
    if path.startswith(_DOCS):
        return _DOCS_POLICY.encode()
    if path == "/" or path.startswith("/static/"):
        return _VIEWER_POLICY.encode()
    return None


class SecurityHeaders:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = _policy(scope["path"])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append(_NOSNIFF)
                if policy is not None:
                    headers.append((b"content-security-policy", policy))
                    headers.append((b"x-frame-options", b"DENY"))
                    headers.append((b"referrer-policy", b"no-referrer"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
