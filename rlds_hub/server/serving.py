"""How ``rlds-hub serve`` runs uvicorn: the listening socket bound before anything says where
the service is, and an HTTP protocol that bounds what slow or idle clients can hold.

uvicorn closes a kept-alive connection that stays idle after a response
(``timeout_keep_alive``), but gives a request's headers no deadline: a client that opens a
connection and sends nothing, or trickles its headers, holds it (and a file descriptor)
forever. The protocols here close a connection whose request headers are not complete
``header_timeout`` seconds after it opened or after its previous response, and close new
connections at once while ``max_connections`` are open (uvicorn's ``limit_concurrency``
answers 503 to requests beyond as many running at once).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional: uvicorn falls back to h11
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

# Attributes set on uvicorn's Config (they travel to worker processes with it).
HEADER_TIMEOUT = "rlds_hub_header_timeout"
MAX_CONNECTIONS = "rlds_hub_max_connections"
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
    b"connection: close\r\ncontent-length: 38\r\n\r\n"
    b"the request headers came in too slowly"
)


class _Limits:
    """What both protocols add: the header deadline and the connection cap."""

    config: Any
    connections: set[Any]
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _header_deadline: asyncio.TimerHandle | None = None

    def _admit(self) -> bool:
        """False (and the connection closed) when too many are open already."""
        cap = getattr(self.config, MAX_CONNECTIONS, None)
        if cap is not None and len(self.connections) > cap:
            self.transport.abort()  # frees the descriptor now; nothing was read
            return False
        self._arm_header_deadline()
        return True

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        seconds = getattr(self.config, HEADER_TIMEOUT, None)
        if seconds and not self.transport.is_closing():
            self._header_deadline = self.loop.call_later(seconds, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()


class H11WithLimits(_Limits, H11Protocol):
    """uvicorn's h11 protocol with a deadline for request headers and a connection cap."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._admit()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state in (h11.SEND_BODY, h11.DONE):  # the headers are complete
            self._cancel_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE:  # waiting for the next request's headers
            self._arm_header_deadline()


if HttpToolsProtocol is not None:

    class HttpToolsWithLimits(_Limits, HttpToolsProtocol):  # type: ignore[misc,valid-type]
        """uvicorn's httptools protocol with a deadline for request headers and a cap."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._admit()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_deadline()
            super().connection_lost(exc)

        def on_headers_complete(self) -> None:
            self._cancel_header_deadline()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_deadline()

    PROTOCOL: type[asyncio.Protocol] = HttpToolsWithLimits
else:
    PROTOCOL = H11WithLimits


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``; ValueError saying why it cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as e:
        raise ValueError(f"--host {host}: {e.strerror}") from e
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        hint = (
            " (another server is using it: stop it, or choose another --port)"
            if e.errno == 98
            else ""
        )
        raise ValueError(f"cannot listen on {host}:{port}: {e.strerror}{hint}") from e
    sock.set_inheritable(True)
    return sock


def run(
    app: Any,
    sock: socket.socket,
    *,
    workers: int,
    header_timeout: float,
    max_connections: int,
    keep_alive: int,
    **options: Any,
) -> None:
    """Serves ``app`` (an app, or an import string with ``factory=True`` for several
    workers) on the bound ``sock`` until interrupted."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    # uvicorn answers 503 once limit_concurrency connections or tasks are open, counting the
    # asking connection: one more than the cap, so only tasks beyond it are refused
    config = uvicorn.Config(
        app,
        http=PROTOCOL,
        workers=workers,
        limit_concurrency=max_connections + 1,
        timeout_keep_alive=keep_alive,
        **options,
    )
    setattr(config, HEADER_TIMEOUT, header_timeout)
    setattr(config, MAX_CONNECTIONS, max_connections)
    try:
        if workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
