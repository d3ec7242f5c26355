"""A PostHog-compatible capture server on 127.0.0.1, for tests and benchmarks.

It speaks the part of PostHog's ingestion API the official SDK uses
(``POST /batch/``, ``/i/v0/e/``, ``/capture/``, gzip or plain JSON), records
every event it accepts, and can be switched at run time to answer 500, 429
with Retry-After, 401, to refuse connections, or to accept and never answer.
Every wait inside it is bounded, and ``close()`` ends every connection.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCEPT = "accept"
ERROR_500 = "500"
RATE_LIMITED = "429"
UNAUTHORIZED = "401"
REFUSE = "refuse"
HANG = "hang"
MODES = (ACCEPT, ERROR_500, RATE_LIMITED, UNAUTHORIZED, REFUSE, HANG)

HANG_LIMIT_SECONDS = 60.0
_STATUS_FOR_MODE = {ERROR_500: 500, RATE_LIMITED: 429, UNAUTHORIZED: 401}


@dataclass
class RequestRecord:
    path: str
    status: int | None
    received_at: float
    events: list[dict[str, Any]]
    api_key: str | None


@dataclass
class _State:
    mode: str = ACCEPT
    retry_after: float = 1.0
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    closing: threading.Event = field(default_factory=threading.Event)


class CaptureServer:
    def __init__(self, mode: str = ACCEPT, retry_after: float = 1.0) -> None:
        self._state = _State(retry_after=retry_after)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = _free_port()
        self.set_mode(mode)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- control ----------------------------------------------------------------

    def set_mode(self, mode: str, retry_after: float | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        with self._state.changed:
            self._state.mode = mode
            if retry_after is not None:
                self._state.retry_after = retry_after
        if mode == REFUSE:
            self._stop_listening()
        else:
            self._listen()

    def close(self) -> None:
        self._state.closing.set()
        self._stop_listening()

    def __enter__(self) -> CaptureServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what arrived -------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._state.changed:
            return list(self._state.events)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._state.changed:
            return list(self._state.requests)

    def events_named(self, name: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event.get("event") == name]

    def wait_for(self, predicate: Callable[[CaptureServer], bool], timeout: float = 10.0) -> bool:
        """Wait (bounded) until ``predicate(self)`` holds after some request."""
        deadline = time.monotonic() + timeout
        with self._state.changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._state.changed.wait(remaining)
        return True

    def wait_for_events(self, count: int, name: str | None = None, timeout: float = 10.0) -> bool:
        def enough(server: CaptureServer) -> bool:
            found = server.events_named(name) if name else server.events
            return len(found) >= count

        return self.wait_for(enough, timeout)

    # -- serving ------------------------------------------------------------------

    def _listen(self) -> None:
        if self._server is not None:
            return
        server = _Server(("127.0.0.1", self.port), _handler_for(self._state))
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _stop_listening(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._open: set[socket.socket] = set()
        self._open_guard = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
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
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _handler_for(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.changed:
                mode, retry_after = state.mode, state.retry_after
            if mode == HANG:
                state.closing.wait(HANG_LIMIT_SECONDS)
                self.close_connection = True
                return
            payload = _decode(body, self.headers.get("Content-Encoding"))
            events = _events_of(payload)
            status = _STATUS_FOR_MODE.get(mode, 200)
            with state.changed:
                if status == 200:
                    state.events.extend(events)
                state.requests.append(
                    RequestRecord(self.path, status, time.monotonic(), events, _api_key_of(payload))
                )
                state.changed.notify_all()
            answer = b'{"status": 1}' if status == 200 else b'{"detail": "test server says no"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            if status == 429:
                self.send_header("Retry-After", f"{retry_after:g}")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _decode(body: bytes, encoding: str | None) -> Any:
    if encoding == "gzip":
        body = gzip.decompress(body)
    try:
        return json.loads(body)
    except ValueError:
        return None


def _events_of(payload: Any) -> list[dict[str, Any]]:
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        return [event for event in payload["batch"] if isinstance(event, dict)]
    if isinstance(payload, dict) and "event" in payload:
        return [payload]
    return []


def _api_key_of(payload: Any) -> str | None:
    if isinstance(payload, dict):
        key = payload.get("api_key")
        return key if isinstance(key, str) else None
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def capture_server(mode: str = ACCEPT, retry_after: float = 1.0) -> Iterator[CaptureServer]:
    server = CaptureServer(mode, retry_after)
    try:
        yield server
    finally:
        server.close()
