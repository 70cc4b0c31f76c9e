"""A TCP proxy on loopback that adds latency to every request and can drop connections, put
in front of a real server (:mod:`rlds_hub.testing.object_store`) by the remote-read tests
and benchmark.

Each request — a burst of bytes from the client after the server last answered — waits
``delay_s`` before it is forwarded, as over a network with that much latency per request
(a round trip). :meth:`LatencyProxy.fail_next` makes the next requests fail: their
connections are cut, as by a network error — before the request reaches the server, or in
the middle of the server's answer (``mid_answer``: after its headers and the first
:data:`CUT_AFTER` bytes of its body, which no HTTP client retries on its own).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from rlds_hub.testing.postgres import free_port

_CHUNK = 1 << 16
CUT_AFTER = 100  # bytes of an answer's body forwarded before a mid-answer cut


class LatencyProxy:
    """Forwards ``127.0.0.1:<port>`` to ``127.0.0.1:upstream_port``."""

    def __init__(self, upstream_port: int, *, delay_s: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.delay_s = delay_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = 0
        self._failures = 0
        self._mid_answer = False
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port), backlog=256)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="latency-proxy").start()

    def fail_next(self, requests: int, *, mid_answer: bool = False) -> None:
        """Cuts the connections of the next ``requests`` requests (``mid_answer``: after the
        answer's headers and :data:`CUT_AFTER` bytes of its body; else before the request is
        sent on)."""
        with self._lock:
            self._failures = requests
            self._mid_answer = mid_answer

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        answered = threading.Event()
        answered.set()  # the next client bytes start a request
        cut = threading.Event()  # set: the answer to the current request is cut short
        threading.Thread(
            target=self._downstream, args=(upstream, client, answered, cut), daemon=True
        ).start()
        try:
            while True:
                data = client.recv(_CHUNK)
                if not data:
                    break
                if answered.is_set():  # a new request
                    answered.clear()
                    with self._lock:
                        self.requests += 1
                        fail = self._failures > 0
                        self._failures -= int(fail)
                        mid_answer = self._mid_answer
                    if fail and not mid_answer:
                        break
                    if fail:
                        cut.set()
                    if self.delay_s:
                        time.sleep(self.delay_s)
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)

    @staticmethod
    def _downstream(
        upstream: socket.socket,
        client: socket.socket,
        answered: threading.Event,
        cut: threading.Event,
    ) -> None:
        try:
            while True:
                data = upstream.recv(_CHUNK)
                if not data:
                    break
                answered.set()
                if cut.is_set():  # the headers and the body's first bytes, then cut
                    headers = data.find(b"\r\n\r\n")
                    client.sendall(data[: (headers + 4 if headers >= 0 else 0) + CUT_AFTER])
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)

    def close(self) -> None:
        self._closed = True
        _close(self._listener)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()
