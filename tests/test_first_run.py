"""Nothing leaves before the admins were told (docs/CONTRACT.md, "First run"): on the run
that posts the first-run notice, events wait in the outbox until the notice has been up
for TELEMETRY_NOTICE_GRACE_SECONDS. An opt-out within that time means nothing about the
instance was ever sent; a bot stopped within it sends at a later start, once the grace
has passed; after it, every event leaves once, with its original timestamp.

`slackonos-telemetry run --http` as a real process: signed Slack requests, its Web API
calls to the Slack stand-in (where the notice is posted), telemetry to the capture server.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from slackonos_telemetry.run.local_slack import ADMIN_CHANNEL_ID
from tests.support.capture import ACCEPT, CaptureServer
from tests.support.cli import cli_process, run_cli
from tests.support.files import outbox_path, read_config, write_config
from tests.support.processes import WAIT, Process, free_port, wait_for_port
from tests.support.slack_api import BOT_TOKEN, SlackStandIn
from tests.support.slack_requests import SECRET, event_callback, message_event, post, signed_headers
from tests.support.waiting import wait_until

SHUTDOWN_TIMEOUT = 1.0  # TELEMETRY_SHUTDOWN_TIMEOUT given to bots whose exit is timed

HOUR = "3600"


@dataclass
class Run:
    bot: Process
    slack: SlackStandIn
    port: int

    def say(self, text: str) -> None:
        body = json.dumps(event_callback(message_event(text, channel=ADMIN_CHANNEL_ID)))
        assert post(f"http://127.0.0.1:{self.port}/slack/events", body, signed_headers(body))
        assert self.slack.wait_for_calls("chat.postMessage", 2, WAIT), self.bot.describe()


@contextlib.contextmanager
def bot_run(
    config_path: Path, slack: SlackStandIn, capture: CaptureServer, grace: str
) -> Iterator[Run]:
    port = free_port()
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.url,
        "TELEMETRY_HOST": capture.url,
        "TELEMETRY_NOTICE_GRACE_SECONDS": grace,
        "TELEMETRY_HEARTBEAT_SECONDS": "1",
        "TELEMETRY_SHUTDOWN_TIMEOUT": "2",
    }
    args = ("--config", str(config_path), "run", "--http", str(port))
    with cli_process(*args, env=env) as bot:
        wait_for_port(port, bot)
        yield Run(bot, slack, port)
        code, _ = bot.timed_exit(signal.SIGTERM)
        assert code == 0, bot.describe()


def _session(config_path: Path) -> dict[str, Any]:
    try:
        data = json.loads(outbox_path(config_path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    session = data.get("session", {}).get("1", {})
    return session if isinstance(session, dict) else {}


def _waiting(config_path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(outbox_path(config_path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return []
    return list(data.get("events", {}).values())


def _slots_pass(config_path: Path, count: int) -> bool:
    """Until ``count`` more heartbeat slots went by: the tracker woke, with events waiting,
    and asked to send each time."""
    start = int(_session(config_path).get("lastSlot", 0))
    return wait_until(lambda: int(_session(config_path).get("lastSlot", 0)) >= start + count, 20)


def _notice(slack: SlackStandIn) -> str:
    calls = slack.wait_for_calls("chat.postMessage", 1, WAIT)
    assert calls, "no first-run notice"
    return str(calls[0].params["text"])


def test_nothing_leaves_within_the_grace_and_the_notice_says_when(tmp_path: Path) -> None:
    config_path = tmp_path / "config" / "config.json"
    write_config(config_path, {"gongLimit": 3})  # a first start: the notice is due
    with SlackStandIn() as slack, CaptureServer(ACCEPT) as capture:
        with bot_run(config_path, slack, capture, HOUR):
            notice = _notice(slack)
            # Made and waiting, and the tracker asked to send at each of two slots.
            assert wait_until(lambda: len(_waiting(config_path)) >= 1, WAIT)
            assert _slots_pass(config_path, 2)
            assert capture.requests == [], "an event left before the admins were told"
            status = run_cli(
                "--config", str(config_path), "status", "--json",
                env={"TELEMETRY_NOTICE_GRACE_SECONDS": HOUR},
            )  # fmt: skip
            report = json.loads(status.stdout)
        assert capture.requests == [], "the shutdown left within the grace"

    assert "first events leave at" in notice, notice
    first = datetime.fromisoformat(report["first_event_at"])
    assert first.strftime("%Y-%m-%d %H:%M:%S UTC") in notice, (notice, first)
    names = Counter(event["event"] for event in _waiting(config_path))
    assert names["startup"] == 1 and names["shutdown"] == 1 and names["heartbeat"] >= 2, names


def test_an_opt_out_within_the_grace_means_nothing_was_ever_sent(tmp_path: Path) -> None:
    config_path = tmp_path / "config" / "config.json"
    write_config(config_path, {"gongLimit": 3})
    with SlackStandIn() as slack, CaptureServer(ACCEPT) as capture:
        with bot_run(config_path, slack, capture, HOUR) as run:
            _notice(slack)
            assert _slots_pass(config_path, 1)
            run.say("setconfig telemetryEnabled false")
            assert wait_until(lambda: _waiting(config_path) == [], WAIT)
        # Later starts, the grace long over: still nothing, off is off.
        with bot_run(config_path, slack, capture, "0"):
            assert _slots_pass(config_path, 2)
        assert capture.requests == [], "an event of the opted-out instance was sent"
    assert read_config(config_path)["telemetryEnabled"] is False


def test_a_bot_stopped_within_the_grace_sends_everything_once_after_it(tmp_path: Path) -> None:
    config_path = tmp_path / "config" / "config.json"
    write_config(config_path, {"gongLimit": 3})
    with SlackStandIn() as slack, CaptureServer(ACCEPT) as capture:
        with bot_run(config_path, slack, capture, HOUR):
            _notice(slack)
            assert _slots_pass(config_path, 1)
        # A restart within the grace: the notice is not posted again, and still nothing.
        with bot_run(config_path, slack, capture, HOUR):
            assert _slots_pass(config_path, 1)
            assert capture.requests == []
        made = {event["uuid"]: event["timestamp"] for event in _waiting(config_path)}
        assert len(slack.calls("chat.postMessage")) == 1, "the notice was posted twice"
        # The grace has passed (a start that finds it over): every waiting event, once.
        with bot_run(config_path, slack, capture, "0"):
            assert capture.wait_for(lambda s: set(made) <= {e["uuid"] for e in s.events}, WAIT)
        assert wait_until(lambda: _waiting(config_path) == [], WAIT)

    sent = Counter(event["uuid"] for event in capture.events)
    assert all(count == 1 for count in sent.values()), sent
    kept = {event["uuid"]: event["timestamp"] for event in capture.events if event["uuid"] in made}
    assert kept == made, "a waiting event lost its original timestamp"
