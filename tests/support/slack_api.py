"""Slack's end on 127.0.0.1: the Web API (the console's Slack stand-in, made to record every
call and to fail on demand) and Socket Mode's WebSocket end.

Web API failures per method: an ``ok: false`` answer, an HTTP status (500, or 429 with
Retry-After), a body that is not JSON, or no answer at all until the stand-in closes
(bounded).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from slackonos_telemetry.run.local_slack import ApiCall, LocalSlack, Reply
from tests.support.waiting import DEFAULT_TIMEOUT, wait_until

HANG_LIMIT_SECONDS = 60.0
BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-1-A0TEST-1234-abcdef"


class SlackStandIn(LocalSlack):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._calls: list[ApiCall] = []
        self._changed = threading.Condition()
        self._failures: dict[str, str] = {}
        self._closing = threading.Event()
        super().__init__(*args, **kwargs)

    # -- failing ----------------------------------------------------------------

    def fail(self, method: str, how: str) -> None:
        """From now on ``method`` answers with ``how``: an error code for ``ok: false``
        (such as "channel_not_found"), or "http-500", "http-429", "not-json", "hang"."""
        with self._changed:
            self._failures[method] = how

    def heal(self, method: str) -> None:
        with self._changed:
            self._failures.pop(method, None)

    def respond(self, call: ApiCall) -> Reply:
        with self._changed:
            how = self._failures.get(call.method)
        if how is None:
            return super().respond(call)
        if how == "hang":
            self._closing.wait(HANG_LIMIT_SECONDS)
            return Reply(503, b"")
        if how == "http-500":
            return Reply(500, b"<html>internal error</html>", {"Content-Type": "text/html"})
        if how == "http-429":
            return Reply(
                429,
                b'{"ok": false, "error": "ratelimited"}',
                {"Content-Type": "application/json", "Retry-After": "30"},
            )
        if how == "not-json":
            return Reply(200, b"this is not json {", {"Content-Type": "application/json"})
        return Reply.json({"ok": False, "error": how})

    # -- recording ----------------------------------------------------------------

    def received(self, call: ApiCall) -> None:
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()
        super().received(call)

    def calls(self, method: str | None = None) -> list[ApiCall]:
        with self._changed:
            calls = list(self._calls)
        return [call for call in calls if method is None or call.method == method]

    def wait_for_calls(
        self, method: str, count: int = 1, timeout: float = DEFAULT_TIMEOUT
    ) -> list[ApiCall]:
        """The calls of ``method`` once there are ``count`` of them (bounded wait)."""
        wait_until(lambda: len(self.calls(method)) >= count, timeout, changed=self._changed)
        return self.calls(method)

    def close(self) -> None:
        self._closing.set()
        super().close()


class SocketModeStandIn:
    """The WebSocket end of Slack's Socket Mode on 127.0.0.1: says hello to each
    connection, sends what a test asks, and records every frame the bot sends."""

    def __init__(self) -> None:
        self._connections: list[ServerConnection] = []
        self._frames: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._server: Server = serve(self._handle, "127.0.0.1", 0, close_timeout=1)
        self.port: int = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=test-ticket&app_id=A0TELEMETRY"

    def _handle(self, connection: ServerConnection) -> None:
        with self._changed:
            self._connections.append(connection)
            self._changed.notify_all()
        hello = {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "local-stand-in", "approximate_connection_time": 3600},
            "connection_info": {"app_id": "A0TELEMETRY"},
        }
        connection.send(json.dumps(hello))
        while not self._closing.is_set():
            try:
                raw = connection.recv(timeout=0.2)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            try:
                frame = json.loads(raw)
            except ValueError:
                frame = {"unparsed": raw}
            with self._changed:
                self._frames.append(frame if isinstance(frame, dict) else {"unparsed": raw})
                self._changed.notify_all()

    def wait_for_connection(self, timeout: float = DEFAULT_TIMEOUT) -> ServerConnection | None:
        wait_until(lambda: bool(self._connections), timeout, changed=self._changed)
        with self._changed:
            return self._connections[-1] if self._connections else None

    def frames(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._frames)

    def wait_for_frame(
        self, condition: Callable[[dict[str, Any]], bool], timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any] | None:
        def found() -> list[dict[str, Any]]:
            return [frame for frame in self.frames() if condition(frame)]

        wait_until(lambda: bool(found()), timeout, changed=self._changed)
        return next(iter(found()), None)

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._thread.join(5)

    def __enter__(self) -> SocketModeStandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
