"""A stand-in for Slack's Web API on 127.0.0.1.

The console runs the real Bolt app and the real ``WebClient`` against it, so
what the console shows is what Slack would have been sent; the tests use it to
record every Web API call. It answers the methods the plugin and the console
host use, and ``apps.connections.open`` with a Socket Mode URL when given one.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

TEAM_ID = "T0LOCAL01"
BOT_USER_ID = "U0BOT0001"
BOT_ID = "B0BOT0001"
ADMIN_CHANNEL_ID = "C0ADMIN01"
GENERAL_CHANNEL_ID = "C0GENERAL"


@dataclass(frozen=True)
class ApiCall:
    method: str
    params: dict[str, Any]
    token: str | None
    received_at: float

    def blocks(self) -> list[dict[str, Any]]:
        blocks = self.params.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        return blocks if isinstance(blocks, list) else []


@dataclass
class _Workspace:
    channels: dict[str, str]
    bot_user_id: str
    socket_mode_url: str | None = None
    failures: dict[str, str] = field(default_factory=dict)
    calls: list[ApiCall] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    ts_counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class LocalSlack:
    def __init__(
        self,
        channels: dict[str, str] | None = None,
        *,
        bot_user_id: str = BOT_USER_ID,
        socket_mode_url: str | None = None,
        on_call: Callable[[ApiCall], None] | None = None,
    ) -> None:
        self._workspace = _Workspace(
            channels=dict(
                channels or {ADMIN_CHANNEL_ID: "music-admin", GENERAL_CHANNEL_ID: "general"}
            ),
            bot_user_id=bot_user_id,
            socket_mode_url=socket_mode_url,
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self._workspace, on_call))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The Web API base URL, for ``WebClient(base_url=...)`` or SLACK_API_URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    @property
    def bot_user_id(self) -> str:
        return self._workspace.bot_user_id

    def set_socket_mode_url(self, url: str) -> None:
        self._workspace.socket_mode_url = url

    def fail(self, method: str, error: str) -> None:
        """Make ``method`` answer ``{"ok": false, "error": error}`` from now on."""
        self._workspace.failures[method] = error

    def calls(self, method: str | None = None) -> list[ApiCall]:
        with self._workspace.changed:
            calls = list(self._workspace.calls)
        return [call for call in calls if method is None or call.method == method]

    def wait_for_calls(self, method: str, count: int = 1, timeout: float = 10.0) -> list[ApiCall]:
        """The calls of ``method`` once there are ``count`` of them (bounded wait)."""
        deadline = time.monotonic() + timeout
        with self._workspace.changed:
            while True:
                found = [call for call in self._workspace.calls if call.method == method]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    return found
                self._workspace.changed.wait(remaining)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LocalSlack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(
    workspace: _Workspace, on_call: Callable[[ApiCall], None] | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            method = self.path.rsplit("/", 1)[-1].split("?", 1)[0]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            params = _params(body, self.headers.get("Content-Type", ""))
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ") or None
            call = ApiCall(method, params, token, time.monotonic())
            answer = _answer(workspace, call)
            with workspace.changed:
                workspace.calls.append(call)
                workspace.changed.notify_all()
            if on_call is not None:
                on_call(call)
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _params(body: bytes, content_type: str) -> dict[str, Any]:
    text = body.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            data = json.loads(text or "{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {key: values[-1] for key, values in parse_qs(text, keep_blank_values=True).items()}


def _answer(workspace: _Workspace, call: ApiCall) -> dict[str, Any]:
    if call.method in workspace.failures:
        return {"ok": False, "error": workspace.failures[call.method]}
    params = call.params
    channel = str(params.get("channel") or "")
    if call.method == "auth.test":
        return {
            "ok": True,
            "url": "http://127.0.0.1/",
            "team": "Local",
            "user": "slackonos",
            "team_id": TEAM_ID,
            "user_id": workspace.bot_user_id,
            "bot_id": BOT_ID,
        }
    if call.method in ("chat.postMessage", "chat.update"):
        ts = params.get("ts") or f"{int(time.time())}.{next(workspace.ts_counter):06d}"
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": params.get("text")}}
    if call.method == "chat.postEphemeral":
        return {"ok": True, "message_ts": f"{int(time.time())}.{next(workspace.ts_counter):06d}"}
    if call.method == "conversations.list":
        channels = [{"id": cid, "name": name} for cid, name in workspace.channels.items()]
        return {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}
    if call.method == "conversations.info":
        if channel not in workspace.channels:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": {"id": channel, "name": workspace.channels[channel]}}
    if call.method == "apps.connections.open":
        if not workspace.socket_mode_url:
            return {"ok": False, "error": "socket_mode_not_enabled"}
        return {"ok": True, "url": workspace.socket_mode_url}
    return {"ok": False, "error": "unknown_method"}
