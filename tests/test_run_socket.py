"""`run --socket` (docs/CONTRACT.md, "Run modes") against a Socket Mode stand-in: Slack's
WebSocket end on 127.0.0.1 (the `websockets` library), the Web API stand-in handing out
its URL from apps.connections.open, the bot a real subprocess stopped by a real
SIGTERM."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from slackonos_telemetry.run.local_slack import ADMIN_CHANNEL_ID
from tests.support.capture import ACCEPT, HANG, CaptureServer
from tests.support.cli import cli_process
from tests.support.files import outbox_events, read_config, write_config
from tests.support.processes import WAIT, Process
from tests.support.slack_api import APP_TOKEN, BOT_TOKEN, SlackStandIn, SocketModeStandIn
from tests.support.slack_requests import event_callback, events_api_envelope, message_event
from tests.support.waiting import within

SHUTDOWN_TIMEOUT = 1.0  # TELEMETRY_SHUTDOWN_TIMEOUT given to bots whose exit is timed


@dataclass
class SocketBot:
    bot: Process
    slack: SlackStandIn
    socket_mode: SocketModeStandIn
    capture: CaptureServer


@contextlib.contextmanager
def socket_bot(config_path: Path, *run_args: str) -> Iterator[SocketBot]:
    write_config(config_path, {"telemetryNoticeShown": True})
    with (
        SocketModeStandIn() as socket_mode,
        SlackStandIn() as slack,
        CaptureServer(ACCEPT) as capture,
    ):
        slack.socket_mode_url = socket_mode.url()
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_API_URL": slack.url,
            "TELEMETRY_HOST": capture.url,
            "TELEMETRY_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
        }
        with cli_process("--config", str(config_path), "run", *run_args, env=env) as bot:
            connected = socket_mode.wait_for_connection(WAIT)
            assert connected is not None, f"no Socket Mode connection\n{bot.describe()}"
            yield SocketBot(bot, slack, socket_mode, capture)


def test_socket_mode_acks_the_envelope_and_answers(config_path: Path) -> None:
    with socket_bot(config_path, "--socket") as run:
        (opened,) = run.slack.calls("apps.connections.open")
        assert opened.token == APP_TOKEN, "the connection is opened with the app-level token"
        connection = run.socket_mode.wait_for_connection()
        assert connection is not None

        body = event_callback(message_event("telemetry status", channel=ADMIN_CHANNEL_ID))
        envelope_id = "1d5b6a3c-7f0e-4f59-9a50-4a2f0c3e7d11"
        connection.send(json.dumps(events_api_envelope(body, envelope_id)))

        ack = run.socket_mode.wait_for_frame(lambda f: f.get("envelope_id") == envelope_id)
        assert ack is not None, f"no ack of {envelope_id}: {run.socket_mode.frames()}\n" + (
            run.bot.describe()
        )
        answers = run.slack.wait_for_calls("chat.postMessage", 1, WAIT)
        assert answers, f"no answer at the Slack stand-in\n{run.bot.describe()}"
        assert answers[0].params["channel"] == ADMIN_CHANNEL_ID
        assert str(answers[0].params["text"]).startswith("Telemetry is on"), answers[0].params
        assert answers[0].token == BOT_TOKEN

        assert run.capture.wait_for_events(1, "startup", timeout=WAIT), run.bot.describe()
        code, _ = run.bot.timed_exit(signal.SIGTERM)

        assert code == 0, run.bot.describe()
        assert "Traceback" not in run.bot.stderr, run.bot.describe()
        shutdown = run.capture.events_named("shutdown")
        assert len(shutdown) == 1, f"{run.capture.events}\n{run.bot.describe()}"
        assert shutdown[0]["distinct_id"] == read_config(config_path)["telemetryInstanceId"]
        acks = [f for f in run.socket_mode.frames() if f.get("envelope_id") == envelope_id]
        assert len(acks) == 1, run.socket_mode.frames()


def test_socket_mode_sigterm_exits_within_the_deadline_when_posthog_hangs(
    config_path: Path,
) -> None:
    with socket_bot(config_path, "--socket") as run:
        connection = run.socket_mode.wait_for_connection()
        assert connection is not None
        assert run.capture.wait_for_events(1, "startup", timeout=WAIT), run.bot.describe()
        # Slack pings the bot every few seconds; the SIGTERM comes right after one.
        assert connection.ping().wait(WAIT), "the bot did not answer a ping"
        run.capture.set_mode(HANG)

        code, took = run.bot.timed_exit(signal.SIGTERM)

        assert code == 0, run.bot.describe()
        assert took <= within(SHUTDOWN_TIMEOUT), (
            f"SIGTERM to exit took {took:.2f} s with TELEMETRY_SHUTDOWN_TIMEOUT="
            f"{SHUTDOWN_TIMEOUT:g}\n{run.bot.describe()}"
        )
        assert not run.capture.events_named("shutdown")
        left = [event["event"] for event in outbox_events(config_path)]
        assert left == ["shutdown"], left  # kept for the next start


def test_run_with_both_tokens_defaults_to_socket_mode(config_path: Path) -> None:
    with socket_bot(config_path) as run:  # no --socket
        (opened,) = run.slack.calls("apps.connections.open")
        assert opened.token == APP_TOKEN
        assert "console" not in run.bot.stdout.lower()
        code, _ = run.bot.timed_exit(signal.SIGTERM)
        assert code == 0, run.bot.describe()
