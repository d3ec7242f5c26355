"""A PostHog-compatible capture server on 127.0.0.1, for tests and benchmarks.

It speaks the part of PostHog's ingestion API the official SDK uses (``POST
/batch/``, gzip or plain JSON; the parsing is the console stand-in's own),
records every request and every event it accepts, and can be switched at run
time to answer 500, 429 with Retry-After, 401, 408, a redirect, to reject any
batch holding a given uuid, to refuse connections, or to accept and never answer.
Every wait inside it is bounded, and ``close()`` ends every connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from slackonos_telemetry.run.http_server import BackgroundServer
from slackonos_telemetry.run.local_posthog import decode_capture, events_of
from tests.support.waiting import DEFAULT_TIMEOUT, wait_until

ACCEPT = "accept"
ERROR_500 = "500"
RATE_LIMITED = "429"
UNAUTHORIZED = "401"
TIMEOUT_408 = "408"
REDIRECT_301 = "301"
REDIRECT_302 = "302"
REDIRECT_307 = "307"
REFUSE = "refuse"
HANG = "hang"
MODES = (
    ACCEPT,
    ERROR_500,
    RATE_LIMITED,
    UNAUTHORIZED,
    TIMEOUT_408,
    REDIRECT_301,
    REDIRECT_302,
    REDIRECT_307,
    REFUSE,
    HANG,
)
MOVED_PATH = "/moved/"

HANG_LIMIT_SECONDS = 60.0
_STATUS_FOR_MODE = {
    ERROR_500: 500,
    RATE_LIMITED: 429,
    UNAUTHORIZED: 401,
    TIMEOUT_408: 408,
    REDIRECT_301: 301,
    REDIRECT_302: 302,
    REDIRECT_307: 307,
}


@dataclass
class RequestRecord:
    method: str
    path: str
    status: int | None
    received_at: float
    events: list[dict[str, Any]]
    api_key: str | None


@dataclass
class _State:
    mode: str = ACCEPT
    retry_after: float = 1.0
    reject_uuids: set[str] = field(default_factory=set)
    hang_after: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    closing: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)


class CaptureServer:
    def __init__(self, mode: str = ACCEPT, retry_after: float = 1.0) -> None:
        self._state = _State(retry_after=retry_after)
        self._server: BackgroundServer | None = None
        self.port = 0
        self._listen()
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

    def hang_after(self, answered: int) -> None:
        """Answer the next ``answered`` requests as the mode says; hang every later one."""
        with self._state.changed:
            self._state.hang_after = len(self._state.requests) + answered

    def reject_batches_with(self, *uuids: str) -> None:
        """Answer 400 to any batch that holds one of ``uuids`` (and accept the others)."""
        with self._state.changed:
            self._state.reject_uuids.update(uuids)

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
        """Every event accepted (2xx) at the capture endpoint, in order."""
        with self._state.changed:
            return list(self._state.events)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._state.changed:
            return list(self._state.requests)

    def events_named(self, name: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event.get("event") == name]

    @property
    def names(self) -> list[str]:
        """The name of every event accepted, in order."""
        return [str(event.get("event")) for event in self.events]

    def wait_for(
        self, predicate: Callable[[CaptureServer], bool], timeout: float = DEFAULT_TIMEOUT
    ) -> bool:
        """Wait (bounded) until ``predicate(self)`` holds after some request."""
        return wait_until(lambda: predicate(self), timeout, changed=self._state.changed)

    def wait_for_events(
        self, count: int, name: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> bool:
        def enough(server: CaptureServer) -> bool:
            found = server.events_named(name) if name else server.events
            return len(found) >= count

        return self.wait_for(enough, timeout)

    def wait_for_request(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Until a request has begun (also one that will hang)."""
        return self._state.started.wait(timeout)

    # -- serving ------------------------------------------------------------------

    def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = BackgroundServer(_handler_for(self._state, self), port=self.port).start()
        self.port = self._server.port

    def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()


def _handler_for(state: _State, owner: CaptureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._record_and_answer("GET", [], None, 200 if self.path == MOVED_PATH else 405)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.started.set()
            with state.changed:
                mode, retry_after = state.mode, state.retry_after
                rejected = set(state.reject_uuids)
                if state.hang_after is not None and len(state.requests) >= state.hang_after:
                    mode = HANG
            payload = decode_capture(body, self.headers.get("Content-Encoding"))
            events = events_of(payload)
            if mode == HANG:
                # Recorded with no status: it arrived, and was never answered.
                with state.changed:
                    state.requests.append(
                        RequestRecord("POST", self.path, None, time.monotonic(), events, None)
                    )
                    state.changed.notify_all()
                state.closing.wait(HANG_LIMIT_SECONDS)
                self.close_connection = True
                return
            api_key = payload.get("api_key") if isinstance(payload, dict) else None
            if self.path == MOVED_PATH:
                status = 200
            elif rejected and any(event.get("uuid") in rejected for event in events):
                status = 400
            else:
                status = _STATUS_FOR_MODE.get(mode, 200)
            headers = {}
            if status == 429:
                headers["Retry-After"] = f"{retry_after:g}"
            if 300 <= status < 400:
                headers["Location"] = f"{owner.url}{MOVED_PATH}"
            accepted = events if status == 200 and self.path != MOVED_PATH else []
            self._record_and_answer("POST", events, api_key, status, headers, accepted)

        def _record_and_answer(
            self,
            method: str,
            events: list[dict[str, Any]],
            api_key: Any,
            status: int,
            headers: dict[str, str] | None = None,
            accepted: list[dict[str, Any]] | None = None,
        ) -> None:
            with state.changed:
                state.events.extend(accepted or [])
                state.requests.append(
                    RequestRecord(
                        method,
                        self.path,
                        status,
                        time.monotonic(),
                        events,
                        api_key if isinstance(api_key, str) else None,
                    )
                )
                state.changed.notify_all()
            answer = b'{"status": 1}' if status == 200 else b'{"detail": "test server says no"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def capture_server(mode: str = ACCEPT, retry_after: float = 1.0) -> Iterator[CaptureServer]:
    server = CaptureServer(mode, retry_after)
    try:
        yield server
    finally:
        server.close()
