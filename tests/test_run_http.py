"""`run --http PORT` (docs/CONTRACT.md, "Run modes"), as deployed: a real subprocess
serving the Events API on 127.0.0.1, Slack-signed requests, Web API calls to a local Slack
stand-in, telemetry to a local PostHog capture server, stopped by a real SIGTERM."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from slackonos_telemetry.run.local_slack import ADMIN_CHANNEL_ID
from tests.support.capture import ACCEPT, CaptureServer, capture_server
from tests.support.cli import cli_process
from tests.support.files import read_config, write_config
from tests.support.processes import (
    GENEROUS_SHUTDOWN,
    WAIT,
    Process,
    connects,
    free_port,
    wait_for_port,
)
from tests.support.slack_api import BOT_TOKEN, SlackStandIn
from tests.support.slack_requests import SECRET, event_callback, message_event, post, signed_headers

SHUTDOWN_TIMEOUT = 1.0  # TELEMETRY_SHUTDOWN_TIMEOUT given to bots whose exit is timed

CHAT_METHODS = ("chat.postMessage", "chat.postEphemeral", "chat.update")


@dataclass
class HttpBot:
    bot: Process
    slack: SlackStandIn
    capture: CaptureServer
    port: int
    config_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def post(self, text: str, headers: dict[str, str] | None = None) -> int:
        body = json.dumps(event_callback(message_event(text, channel=ADMIN_CHANNEL_ID)))
        return post(self.url, body, signed_headers(body) if headers is None else headers)

    def chat_calls(self) -> list[str]:
        return [
            f"{call.method}: {call.params.get('text')}"
            for call in self.slack.calls()
            if call.method in CHAT_METHODS
        ]


@contextlib.contextmanager
def http_bot(config_path: Path, *extra_args: str) -> Iterator[HttpBot]:
    # The notice was shown before: every chat call in these tests answers a request.
    write_config(config_path, {"gongLimit": 3, "telemetryNoticeShown": True})
    port = free_port()
    with SlackStandIn() as slack, CaptureServer(ACCEPT) as capture:
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.url,
            "TELEMETRY_HOST": capture.url,
            "TELEMETRY_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
        }
        args = ("--config", str(config_path), "run", "--http", str(port), *extra_args)
        with cli_process(*args, env=env) as bot:
            wait_for_port(port, bot)
            yield HttpBot(bot, slack, capture, port, config_path)


def test_http_answers_a_signed_command_and_stops_on_sigterm(config_path: Path) -> None:
    with http_bot(config_path, "--bind", "127.0.0.1") as http:
        assert http.post("telemetry status") == 200, http.bot.describe()

        answers = http.slack.wait_for_calls("chat.postMessage", 1, WAIT)
        assert answers, f"no answer at the Slack stand-in\n{http.bot.describe()}"
        answer = answers[0]
        assert answer.params["channel"] == ADMIN_CHANNEL_ID
        assert str(answer.params["text"]).startswith("Telemetry is on"), answer.params
        assert answer.token == BOT_TOKEN
        assert answer.blocks(), "the status is Block Kit, with the text as fallback"

        # The SDK is loaded once the startup event is in: the deadline is for sending.
        assert http.capture.wait_for_events(1, "startup", timeout=WAIT), http.bot.describe()
        code, _ = http.bot.timed_exit(signal.SIGTERM)

        assert code == 0, http.bot.describe()
        assert "Traceback" not in http.bot.stderr, http.bot.describe()
        shutdown = http.capture.events_named("shutdown")
        assert len(shutdown) == 1, f"{http.capture.events}\n{http.bot.describe()}"
        assert shutdown[0]["distinct_id"] == read_config(config_path)["telemetryInstanceId"]
        assert http.chat_calls() == [f"chat.postMessage: {answer.params['text']}"]


@pytest.mark.parametrize(
    "forgery",
    ["wrong secret", "tampered body", "stale timestamp", "no signature"],
)
def test_http_refuses_a_bad_signature_with_401_and_does_nothing(
    config_path: Path, forgery: str
) -> None:
    with http_bot(config_path) as http:
        body = json.dumps(event_callback(message_event("setconfig telemetryEnabled false")))
        headers = {
            "wrong secret": signed_headers(body, secret="not-the-signing-secret"),
            "tampered body": signed_headers(body + " "),
            "stale timestamp": signed_headers(body, timestamp=int(time.time()) - 10 * 60),
            "no signature": {},
        }[forgery]

        assert post(http.url, body, headers) == 401

        # A signed request after it is answered, and sees telemetry still on.
        assert http.post("telemetry status") == 200
        answers = http.slack.wait_for_calls("chat.postMessage", 1, WAIT)
        assert answers, http.bot.describe()
        assert str(answers[0].params["text"]).startswith("Telemetry is on"), answers[0].params

        code, _ = http.bot.timed_exit(signal.SIGTERM)
        assert code == 0, http.bot.describe()
        # Once the bot has ended, every piece of work it accepted is done: the forged
        # request made no Web API call and changed nothing.
        assert http.chat_calls() == [f"chat.postMessage: {answers[0].params['text']}"]
        assert "telemetryEnabled" not in read_config(config_path)


def test_http_binds_127_0_0_1_by_default(config_path: Path) -> None:
    with http_bot(config_path) as http:
        assert connects("127.0.0.1", http.port)
        # Another loopback address reaches a socket bound to 0.0.0.0, not one bound
        # to 127.0.0.1.
        assert not connects("127.0.0.2", http.port), "--http listens on every address"
        code, _ = http.bot.timed_exit(signal.SIGTERM)
        assert code == 0, http.bot.describe()


def test_ctrl_c_stops_an_http_bot_cleanly(config_path: Path) -> None:
    write_config(config_path, {"telemetryNoticeShown": True})
    port = free_port()
    slack = SlackStandIn()
    with slack, capture_server() as capture:
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.url,
            "TELEMETRY_HOST": capture.url,
            "TELEMETRY_SHUTDOWN_TIMEOUT": GENEROUS_SHUTDOWN,
        }
        args = ("--config", str(config_path), "run", "--http", str(port))
        with cli_process(*args, env=env) as bot:
            wait_for_port(port, bot)
            body = json.dumps(event_callback(message_event("telemetry status")))
            url = f"http://127.0.0.1:{port}/slack/events"
            assert post(url, body, signed_headers(body)) == 200
            assert slack.wait_for_calls("chat.postMessage", 1, WAIT), bot.describe()
            assert capture.wait_for_events(1, "startup", timeout=WAIT), bot.describe()

            code, _ = bot.timed_exit(lambda: bot.signal(signal.SIGINT))

            assert code == 0, bot.describe()
            assert "Traceback" not in bot.stderr, bot.describe()
        assert len(capture.events_named("shutdown")) == 1, capture.events
