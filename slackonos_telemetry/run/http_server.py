"""Serving HTTP on a chosen address, on threads of its own, and stopping for sure.

One wrapper for everything the project serves: the Slack and PostHog stand-ins
(``http.server`` handlers) and a Bolt app over WSGI (Bolt's own development
server binds 0.0.0.0, and serves one request at a time). Replies are sent with
TCP_NODELAY (a keep-alive client otherwise waits ~40 ms per request for the
delayed ACK), and ``stop()`` ends open connections too.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
_STOP_JOIN_SECONDS = 5.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._open: set[socket.socket] = set()
        self._open_guard = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._open_guard:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_guard:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_guard:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _WSGIServer(_Server, WSGIServer):
    pass


class _QuietWSGIHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


class BackgroundServer:
    """An ``http.server`` handler class served on ``bind:port`` (0: any free port)."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        bind: str = "127.0.0.1",
        port: int = 0,
        *,
        wsgi_app: Any = None,
    ) -> None:
        if wsgi_app is not None:
            server: _Server = _WSGIServer((bind, port), handler)
            server.set_app(wsgi_app)  # type: ignore[attr-defined]
        else:
            server = _Server((bind, port), handler)
        self._server = server
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    def start(self) -> BackgroundServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"http-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=_STOP_JOIN_SECONDS)


class BoltHttpServer(BackgroundServer):
    """``/slack/events`` for one Bolt app; requests are verified by the app's signing secret."""

    def __init__(self, app: Any, bind: str = "127.0.0.1", port: int = 3000) -> None:
        from slack_bolt.adapter.wsgi import SlackRequestHandler

        super().__init__(
            _QuietWSGIHandler, bind, port, wsgi_app=SlackRequestHandler(app, path=EVENTS_PATH)
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{EVENTS_PATH}"
