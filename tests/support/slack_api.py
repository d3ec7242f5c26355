"""The console's Slack stand-in, made to record every call and to fail on demand.

Failures per Web API method: an ``ok: false`` answer, an HTTP status (500, or
429 with Retry-After), a body that is not JSON, or no answer at all until the
stand-in closes (bounded).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from slackonos_telemetry.run.local_slack import ApiCall, LocalSlack, Reply

HANG_LIMIT_SECONDS = 60.0


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

    def wait_for_calls(self, method: str, count: int = 1, timeout: float = 15.0) -> list[ApiCall]:
        """The calls of ``method`` once there are ``count`` of them (bounded wait)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [call for call in self._calls if call.method == method]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    return found
                self._changed.wait(remaining)

    def close(self) -> None:
        self._closing.set()
        super().close()
