"""A PostHog stand-in on 127.0.0.1, for the local console: a demo is never counted.

It takes what the official SDK sends (``POST /batch/``, ``/i/v0/e/``,
``/capture/``; gzip or plain JSON), answers as PostHog does, and hands each
event it received to a callback, so the console can show the real payloads.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from slackonos_telemetry.run.http_server import BackgroundServer

OnEvent = Callable[[dict[str, Any]], None]


def decode_capture(body: bytes, content_encoding: str | None) -> Any:
    """The JSON payload of a capture request (None when it is not JSON)."""
    try:
        if content_encoding == "gzip":
            body = gzip.decompress(body)
        return json.loads(body)
    except (OSError, EOFError, zlib.error, ValueError):
        return None


def events_of(payload: Any) -> list[dict[str, Any]]:
    """The events in a capture payload: a batch, or one event."""
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        return [event for event in payload["batch"] if isinstance(event, dict)]
    if isinstance(payload, dict) and "event" in payload:
        return [payload]
    return []


class LocalPostHog:
    def __init__(self, on_event: OnEvent | None = None) -> None:
        self._on_event = on_event
        self._server = BackgroundServer(_handler(self)).start()

    @property
    def url(self) -> str:
        """The host, for TELEMETRY_HOST."""
        return f"http://127.0.0.1:{self._server.port}"

    def received(self, events: list[dict[str, Any]]) -> None:
        if self._on_event is not None:
            for event in events:
                self._on_event(event)

    def close(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalPostHog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(posthog: LocalPostHog) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload = decode_capture(body, self.headers.get("Content-Encoding"))
            ok = payload is not None
            if ok:
                posthog.received(events_of(payload))
            answer = b'{"status": 1}' if ok else b'{"detail": "not JSON"}'
            self.send_response(200 if ok else 400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
