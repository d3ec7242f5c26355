"""A real Bolt app with the telemetry plugin, served over HTTP, talking to a local Slack.

Nothing is mocked: requests are signed the way Slack signs them and POSTed to
the app's HTTP endpoint, the plugin answers through a real ``WebClient`` to
``SlackStandIn`` (which records every Web API call), telemetry goes to a local
PostHog capture server, and the config is a real JSON file in a temp dir.

The bots run in the test's own process: see ``files`` for why nothing in the tests
opens a lock file of the plugin's.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from slack_bolt import Ack, App, Say
from slack_sdk import WebClient

from slackonos_telemetry import register
from slackonos_telemetry.run.http_server import BoltHttpServer
from slackonos_telemetry.run.local_slack import (
    ADMIN_CHANNEL_ID,
    BOT_USER_ID,
    GENERAL_CHANNEL_ID,
    ApiCall,
)
from slackonos_telemetry.slack import worker
from tests.support.capture import ACCEPT, CaptureServer
from tests.support.files import read_config, write_config
from tests.support.slack_api import SlackStandIn
from tests.support.slack_requests import (
    SECRET,
    click_body,
    event_body,
    message_event,
    post,
    signed_headers,
)

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

ADMIN = ADMIN_CHANNEL_ID
GENERAL = GENERAL_CHANNEL_ID
BOT = BOT_USER_ID
INSTANCE_ID = "6f1c1f5e-3b7a-4c52-9a43-0d6c2a9e8b11"
API_KEY = "phc_testProjectKeyAbcdefghijklmnopqrstuvwxyz0123"
# How long an answer may take to reach the Slack stand-in: the waits end when it arrives,
# so this only bounds a failure. On two cores shared with CPU burners and other workers'
# gunicorn tests, 10 s was once not enough for one in-process answer.
WAIT_SECONDS = 30.0
SHUTDOWN_SECONDS = 0.5

BOOLEAN_WORDS = ("true", "false", "yes", "no", "on", "off", "1", "0")
DISABLE_WAYS = (
    "setconfig telemetryEnabled false",
    "TELEMETRY_ENABLED=false",
    '"telemetryEnabled": false',
    "DO_NOT_TRACK=1",
)


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


def code_block(text: str) -> str:
    match = re.search(r"```\s*\n?(.*?)```", text, re.DOTALL)
    assert match, f"no code block in {text!r}"
    return match.group(1).strip()


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
        return post(self.server.url, body, signed_headers(body, **signing))

    def send(self, text: str, **fields: Any) -> int:
        return self.send_event(message_event(text, **fields))

    def click(self, button: dict[str, Any], **fields: Any) -> int:
        body = click_body(button, **fields)
        return post(
            self.server.url, body, signed_headers(body), "application/x-www-form-urlencoded"
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


class HostListeners:
    """A host bot's own listeners, as a real bot has them: a catch-all for messages, one for
    mentions, and a button of its own. Everything they hear is noted as (type, text).

    ``answers``: "all" answers each message and mention "host heard: TEXT" in its
    channel (so that the host's answers can be told from the plugin's); "ping" answers
    only a message "host ping", with "host pong"; "none" answers nothing."""

    def __init__(self, answers: str = "all") -> None:
        assert answers in ("all", "ping", "none"), answers
        self.answers = answers
        self.heard: list[tuple[str, str]] = []
        self.actions: list[Any] = []
        self._guard = threading.Lock()

    def hear(self, event: dict[str, Any]) -> str | None:
        """Note ``event``; the answer it gets, if any."""
        text = str(event.get("text"))
        with self._guard:
            self.heard.append((str(event.get("type")), text))
        if self.answers == "all":
            return f"host heard: {text}"
        if self.answers == "ping" and event.get("type") == "message" and text == "host ping":
            return "host pong"
        return None

    def texts(self) -> list[str]:
        with self._guard:
            return [text for _, text in self.heard]

    def counts(self) -> Counter[tuple[str, str]]:
        with self._guard:
            return Counter(self.heard)

    def install(self, app: App) -> None:
        @app.event("message")
        def any_message(event: dict[str, Any], say: Say) -> None:
            answer = self.hear(event)
            if answer is not None:
                say(text=answer)

        @app.event("app_mention")
        def any_mention(event: dict[str, Any], say: Say) -> None:
            answer = self.hear(event)
            if answer is not None:
                say(text=answer)

        @app.action("host_button")
        def clicked(ack: Ack, body: dict[str, Any]) -> None:
            ack()
            with self._guard:
                self.actions.append(body.get("actions"))

    def install_async(self, app: AsyncApp) -> None:
        @app.event("message")
        async def any_message(event: dict[str, Any], say: Any) -> None:
            answer = self.hear(event)
            if answer is not None:
                await say(text=answer)

        @app.event("app_mention")
        async def any_mention(event: dict[str, Any], say: Any) -> None:
            answer = self.hear(event)
            if answer is not None:
                await say(text=answer)
