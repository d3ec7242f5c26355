"""A real Bolt app with the telemetry plugin, served over HTTP, talking to a local Slack.

Nothing is mocked: requests are signed the way Slack signs them and POSTed to
the app's HTTP endpoint, the plugin answers through a real ``WebClient`` to
``SlackStandIn`` (which records every Web API call), telemetry goes to a local
PostHog capture server, and the config is a real JSON file in a temp dir.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import App
from slack_sdk import WebClient

from slackonos_telemetry import register
from slackonos_telemetry.run.http_server import BoltHttpServer
from slackonos_telemetry.run.local_slack import (
    ADMIN_CHANNEL_ID,
    BOT_USER_ID,
    GENERAL_CHANNEL_ID,
    TEAM_ID,
    ApiCall,
)
from slackonos_telemetry.slack import worker
from tests.support import signing
from tests.support.capture import ACCEPT, CaptureServer
from tests.support.slack_api import SlackStandIn
from tests.support.state import outbox_path as state_outbox_path

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ADMIN = ADMIN_CHANNEL_ID
GENERAL = GENERAL_CHANNEL_ID
BOT = BOT_USER_ID
BOT_ID = "B0BOT0001"
ADMIN_USER = "U0ADMIN01"
OTHER_USER = "U0OTHER01"
APP_ID = "A0TELEMETRY"
INSTANCE_ID = "6f1c1f5e-3b7a-4c52-9a43-0d6c2a9e8b11"
API_KEY = "phc_testProjectKeyAbcdefghijklmnopqrstuvwxyz0123"
WAIT_SECONDS = 10.0
SHUTDOWN_SECONDS = 0.5

BOOLEAN_WORDS = ("true", "false", "yes", "no", "on", "off", "1", "0")
DISABLE_WAYS = (
    "setconfig telemetryEnabled false",
    "TELEMETRY_ENABLED=false",
    '"telemetryEnabled": false',
    "DO_NOT_TRACK=1",
)

_ts_counter = itertools.count(1)
_event_counter = itertools.count(1)


def new_ts() -> str:
    """A Slack message timestamp, unique in this process."""
    return f"{1_700_000_000 + next(_ts_counter)}.{next(_ts_counter):06d}"


def base_config(**extra: Any) -> dict[str, Any]:
    """A config file as a running bot has it: the host's keys, an instance ID, the
    notice already shown (so nothing but the command under test writes the file)."""
    config: dict[str, Any] = {
        "gongLimit": 3,
        "defaultRoom": "Kitchen",
        "telemetryInstanceId": INSTANCE_ID,
        "telemetryNoticeShown": True,
        "telemetryApiKey": API_KEY,
    }
    config.update(extra)
    return config


def write_config(path: Path, config: dict[str, Any] | str) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = config if isinstance(config, str) else json.dumps(config, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
    return path.read_bytes()


def read_config(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def outbox_path(config_path: Path) -> Path:
    return state_outbox_path(config_path)


def outbox_events(config_path: Path) -> list[dict[str, Any]]:
    """Every event stored in the outbox file, whatever the TinyDB table names."""
    path = outbox_path(config_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except FileNotFoundError:
        return []
    found: list[dict[str, Any]] = []
    for table in data.values() if isinstance(data, dict) else []:
        if not isinstance(table, dict):
            continue
        for document in table.values():
            if isinstance(document, dict) and "uuid" in document and "event" in document:
                found.append(document)
    return found


def message_event(
    text: str | None,
    *,
    channel: str = ADMIN,
    user: str | None = ADMIN_USER,
    ts: str | None = None,
    thread_ts: str | None = None,
    kind: str = "message",
    **extra: Any,
) -> dict[str, Any]:
    ts = ts or new_ts()
    event: dict[str, Any] = {
        "type": kind,
        "channel": channel,
        "ts": ts,
        "event_ts": ts,
        "team": TEAM_ID,
        "channel_type": "channel",
    }
    if text is not None:
        event["text"] = text
    if user is not None:
        event["user"] = user
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    event.update(extra)
    return event


def event_body(event: dict[str, Any]) -> str:
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(_event_counter):010d}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": TEAM_ID, "user_id": BOT, "is_bot": True, "enterprise_id": None}
            ],
        }
    )


def click_body(button: dict[str, Any], **fields: Any) -> str:
    """The form body Slack posts for a click on ``button`` (``fields``: click_payload's)."""
    return urllib.parse.urlencode({"payload": json.dumps(click_payload(button, **fields))})


def click_payload(
    button: dict[str, Any],
    *,
    channel: str,
    message_ts: str,
    user: str = ADMIN_USER,
    thread_ts: str | None = None,
    response_url: str = "http://127.0.0.1:9/unused",
) -> dict[str, Any]:
    """The block_actions payload of a click on ``button``."""
    message: dict[str, Any] = {"type": "message", "ts": message_ts, "user": BOT, "bot_id": BOT_ID}
    if thread_ts is not None:
        message["thread_ts"] = thread_ts
    action = {
        "type": "button",
        "action_id": button["action_id"],
        "block_id": "telemetry-actions",
        "text": button.get("text"),
        "value": button.get("value"),
        "action_ts": f"{time.time():.6f}",
    }
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "local"},
        "user": {"id": user, "username": "admin", "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": "1111.2222.3333",
        "channel": {"id": channel, "name": "channel"},
        "message": message,
        "response_url": response_url,
        "actions": [action],
    }
    return payload


def signature_headers(
    body: str, secret: str = SECRET, timestamp: int | None = None
) -> dict[str, str]:
    return signing.signed_headers(body, secret, timestamp)


def post(url: str, body: str, content_type: str, headers: dict[str, str]) -> int:
    return signing.post(url, body, headers, content_type)


def code_block(text: str) -> str:
    match = re.search(r"```\s*\n?(.*?)```", text, re.DOTALL)
    assert match, f"no code block in {text!r}"
    return match.group(1).strip()


def blocks_of(call: ApiCall) -> list[dict[str, Any]]:
    return call.blocks()


def toggle_button(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    buttons = [
        element
        for block in blocks
        if block.get("type") == "actions"
        for element in block.get("elements", [])
        if element.get("type") == "button"
    ]
    assert len(buttons) == 1, f"expected one button, found {buttons}"
    return buttons[0]


def button_label(button: dict[str, Any]) -> str:
    text = button.get("text")
    return str(text.get("text") if isinstance(text, dict) else text)


class Bot:
    """One Bolt app with the plugin, served over HTTP on 127.0.0.1."""

    def __init__(self, app: App, plugin: Any, server: BoltHttpServer, slack: SlackStandIn) -> None:
        self.app = app
        self.plugin = plugin
        self.server = server
        self.slack = slack
        self._stopped = False

    # -- sending ---------------------------------------------------------------

    def send_event(self, event: dict[str, Any], **signing: Any) -> int:
        body = event_body(event)
        return post(self.server.url, body, "application/json", signature_headers(body, **signing))

    def send(self, text: str, **fields: Any) -> int:
        return self.send_event(message_event(text, **fields))

    def click(self, button: dict[str, Any], **fields: Any) -> int:
        body = click_body(button, **fields)
        return post(
            self.server.url,
            body,
            "application/x-www-form-urlencoded",
            signature_headers(body),
        )

    # -- waiting for answers -----------------------------------------------------

    def calls(self, method: str) -> list[ApiCall]:
        return self.slack.calls(method)

    def next_call(self, method: str, action: Callable[[], int]) -> ApiCall:
        """Run ``action`` (a request) and return the one new ``method`` call it caused."""
        before = len(self.slack.calls(method))
        status = action()
        assert status == 200, f"the app answered HTTP {status}"
        calls = self.slack.wait_for_calls(method, before + 1, WAIT_SECONDS)
        assert len(calls) > before, f"no {method} within {WAIT_SECONDS}s"
        return calls[before]

    def answer(self, text: str, **fields: Any) -> ApiCall:
        """Send ``text`` as a message and return the plugin's chat.postMessage answer."""
        return self.next_call("chat.postMessage", lambda: self.send(text, **fields))

    def ephemeral(self, text: str, **fields: Any) -> ApiCall:
        return self.next_call("chat.postEphemeral", lambda: self.send(text, **fields))

    def settle(self) -> ApiCall:
        """A causal marker: a later command's answer, then every piece of work the app
        was given is finished (its executor is shut down, so this is the bot's last
        request). Use it before asserting that something did NOT happen."""
        marker = self.answer("telemetry status")
        # The plugin's worker runs its jobs in order: once a no-op ran, all before it did.
        worker.submit(lambda: None).result(WAIT_SECONDS)
        # Bolt's own internal executor runs the host's listeners: shut down, it has run them all.
        self.app.listener_runner.listener_executor.shutdown(wait=True)
        return marker

    # -- lifecycle -----------------------------------------------------------------

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.plugin.shutdown(timeout=SHUTDOWN_SECONDS)
        finally:
            self.server.stop()


class Testbed:
    """SlackStandIn + a PostHog capture server + any number of bots; closes them all."""

    __test__ = False

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        config_path: Path,
        *,
        capture_mode: str = ACCEPT,
        channels: dict[str, str] | None = None,
    ) -> None:
        self.monkeypatch = monkeypatch
        self.config_path = config_path
        self.slack = SlackStandIn(channels)
        self.capture = CaptureServer(capture_mode)
        self.bots: list[Bot] = []
        monkeypatch.setenv("TELEMETRY_HOST", self.capture.url)
        monkeypatch.setenv("TELEMETRY_SHUTDOWN_TIMEOUT", str(SHUTDOWN_SECONDS))

    def write_config(self, config: dict[str, Any] | str | None = None) -> bytes:
        return write_config(self.config_path, base_config() if config is None else config)

    def config(self) -> dict[str, Any]:
        return read_config(self.config_path)

    def config_bytes(self) -> bytes:
        return self.config_path.read_bytes()

    def new_app(self) -> App:
        client = WebClient(token="xoxb-test", base_url=self.slack.url)
        return App(client=client, signing_secret=SECRET)

    def start(
        self,
        *,
        app: App | None = None,
        setup: Callable[[App], None] | None = None,
        install: Callable[[App], Any] | None = None,
        **register_options: Any,
    ) -> Bot:
        """An app with the plugin registered (``install`` replaces ``register``),
        ``setup`` run on the app first (the host's own listeners), served over HTTP.
        Returns once the plugin's first-run notice thread has finished: register()
        has started it, so a notice thread no longer alive here is done."""
        app = app or self.new_app()
        if setup is not None:
            setup(app)
        if install is not None:
            plugin = install(app)
        else:
            plugin = register(app, config_path=str(self.config_path), **register_options)
        server = BoltHttpServer(app, "127.0.0.1", 0)
        server.start()
        bot = Bot(app, plugin, server, self.slack)
        self.bots.append(bot)
        # The plugin's background start (tracker, first-run notice) waits for a quiet
        # moment; tests need it done before they look.
        assert getattr(plugin, "start_now", lambda _t: True)(WAIT_SECONDS), "plugin never started"
        return bot

    def close(self) -> None:
        try:
            for bot in self.bots:
                with contextlib.suppress(Exception):
                    bot.stop()
        finally:
            self.slack.close()
            self.capture.close()


@contextlib.contextmanager
def open_testbed(
    monkeypatch: pytest.MonkeyPatch, config_path: Path, **options: Any
) -> Iterator[Testbed]:
    bed = Testbed(monkeypatch, config_path, **options)
    try:
        yield bed
    finally:
        bed.close()


def is_uuid4(value: Any) -> bool:
    try:
        return isinstance(value, str) and uuid.UUID(value).version == 4
    except ValueError:
        return False
