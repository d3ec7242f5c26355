"""A stand-in for Slack's Web API on 127.0.0.1, for the local console.

The console runs the real Bolt app and the real ``WebClient`` against it, so
what the console shows is what Slack would have been sent. It answers the
methods the plugin and the console host use, and ``apps.connections.open`` with
a Socket Mode URL when given one. ``respond`` is the one place to change an
answer (a subclass may fail, delay or record calls).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from slackonos_telemetry.run.http_server import BackgroundServer

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


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, body bytes, extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: dict[str, Any], status: int = 200) -> Reply:
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json"})


class LocalSlack:
    def __init__(
        self,
        channels: dict[str, str] | None = None,
        *,
        bot_user_id: str = BOT_USER_ID,
        socket_mode_url: str | None = None,
        on_call: Callable[[ApiCall], None] | None = None,
    ) -> None:
        self.channels = dict(
            channels or {ADMIN_CHANNEL_ID: "music-admin", GENERAL_CHANNEL_ID: "general"}
        )
        self.bot_user_id = bot_user_id
        self.socket_mode_url = socket_mode_url
        self._on_call = on_call
        self._ts_counter = itertools.count(1)
        self._ts_guard = threading.Lock()
        self._server = BackgroundServer(_handler(self)).start()

    @property
    def url(self) -> str:
        """The Web API base URL, for ``WebClient(base_url=...)`` or SLACK_API_URL."""
        return f"http://127.0.0.1:{self._server.port}/api/"

    def respond(self, call: ApiCall) -> Reply:
        """The HTTP answer to ``call``: the method's answer as JSON."""
        return Reply.json(self.answer(call))

    def answer(self, call: ApiCall) -> dict[str, Any]:
        params = call.params
        channel = str(params.get("channel") or "")
        if call.method == "auth.test":
            return {
                "ok": True,
                "url": "http://127.0.0.1/",
                "team": "Local",
                "user": "slackonos",
                "team_id": TEAM_ID,
                "user_id": self.bot_user_id,
                "bot_id": BOT_ID,
            }
        if call.method in ("chat.postMessage", "chat.update"):
            ts = params.get("ts") or self._new_ts()
            return {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {"text": params.get("text")},
            }
        if call.method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._new_ts()}
        if call.method == "conversations.list":
            listed = [{"id": cid, "name": name} for cid, name in self.channels.items()]
            return {"ok": True, "channels": listed, "response_metadata": {"next_cursor": ""}}
        if call.method == "apps.connections.open":
            if not self.socket_mode_url:
                return {"ok": False, "error": "socket_mode_not_enabled"}
            return {"ok": True, "url": self.socket_mode_url}
        return {"ok": False, "error": "unknown_method"}

    def received(self, call: ApiCall) -> None:
        """Called for every call before it is answered."""
        if self._on_call is not None:
            self._on_call(call)

    def close(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalSlack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _new_ts(self) -> str:
        with self._ts_guard:
            return f"{int(time.time())}.{next(self._ts_counter):06d}"


def _handler(slack: LocalSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            method = self.path.rsplit("/", 1)[-1].split("?", 1)[0]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            params = _params(body, self.headers.get("Content-Type", ""))
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ") or None
            call = ApiCall(method, params, token, time.monotonic())
            slack.received(call)
            reply = slack.respond(call)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

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
