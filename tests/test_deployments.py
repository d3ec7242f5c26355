"""docs/CONTRACT.md, "Auto-loading" (AsyncApp and Bolt's servers and adapters) and "One instance":
the plugin in every way a Bolt bot is deployed, as real processes on 127.0.0.1.

- An AsyncApp served by Bolt's own aiohttp server, and by uvicorn through Bolt's ASGI
  adapter: signed events in, Web API calls to the Slack stand-in, PostHog to the capture
  server; commands answered, config persisted, the host's own listeners still answering,
  SIGTERM giving the shutdown event and an exit within the deadline.
- gunicorn with 3 sync workers behind Bolt's Flask adapter (plain, ``--preload``, and
  recycling workers under traffic) and uvicorn with 2 workers: one config file is one
  instance, so exactly one startup and one shutdown, at most one heartbeat per slot,
  one distinct_id, and nothing after an opt-out made in any worker.
- Two apps with two config files in one process share one shutdown deadline.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.run.local_slack import ApiCall
from tests.support.capture import ACCEPT, HANG, CaptureServer
from tests.support.environment import PYTHON, REPO
from tests.support.files import last_slot, outbox_events, read_config, write_config
from tests.support.processes import Process, free_port, started, wait_for_port
from tests.support.slack_api import SlackStandIn
from tests.support.slack_requests import event_body, message_event, post, signed_headers
from tests.support.waiting import wait_until, within

SECRET = "deploy-signing-secret"
BOT_TOKEN = "xoxb-deploy-test"
ADMIN = "C0ADMIN01"
GENERAL = "C0GENERAL"
HEARTBEAT_SECONDS = 1
SHUTDOWN_TIMEOUT = 3.0
WAIT = 30.0  # a server with several workers starts slowly on a loaded machine
STOP = 60.0  # gunicorn's own graceful stop is bounded by its 30 s graceful_timeout


@dataclass
class Deployment:
    server: Process
    port: int
    slack: SlackStandIn
    capture: CaptureServer
    config_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def post(self, text: str, channel: str = ADMIN, **event: Any) -> int:
        body = event_body(message_event(text, channel=channel, **event))
        return post(self.url, body, signed_headers(body, SECRET))

    def answer(self, text: str, channel: str = ADMIN, **event: Any) -> ApiCall:
        """Post ``text``; the one new chat.postMessage it caused."""
        before = len(self.slack.calls("chat.postMessage"))
        status = self.post(text, channel, **event)
        assert status == 200, f"HTTP {status} for {text!r}\n{self.server.describe()}"
        calls = self.slack.wait_for_calls("chat.postMessage", before + 1, WAIT)
        assert len(calls) > before, f"no answer to {text!r}\n{self.server.describe()}"
        return calls[before]

    def wait_started(self) -> None:
        assert self.capture.wait_for_events(1, "startup", WAIT), (
            f"no startup event: {self.capture.names}\n{self.server.describe()}"
        )

    def stop(self) -> int:
        """SIGTERM to the server's main process; its exit code (bounded)."""
        self.server.signal(signal.SIGTERM)
        code = self.server.wait_exit(STOP)
        assert code is not None, f"still running {STOP:g} s after SIGTERM\n{self.server.describe()}"
        return code

    def last_slot(self) -> int:
        """The last heartbeat slot the instance made (from the outbox file's session)."""
        return last_slot(self.config_path)


@contextlib.contextmanager
def deployment(
    config_path: Path,
    command: list[str],
    capture_mode: str = ACCEPT,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
) -> Iterator[Deployment]:
    write_config(config_path, {"telemetryNoticeShown": True, "adminChannel": ADMIN})
    port = free_port()
    with SlackStandIn() as slack, CaptureServer(capture_mode) as capture:
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.url,
            "SLACKONOS_CONFIG": str(config_path),
            "TELEMETRY_HOST": capture.url,
            "TELEMETRY_API_KEY": "phc_deploy_test",
            "TELEMETRY_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "TELEMETRY_SHUTDOWN_TIMEOUT": f"{shutdown_timeout:g}",
            "PYTHONPATH": str(REPO),
            "TEST_TELEMETRY_DEBUG_LOG": "1",
        }
        argv = [part.replace("{port}", str(port)) for part in command]
        with started(argv, env=env, cwd=config_path.parent) as server:
            wait_for_port(port, server, timeout=WAIT)
            yield Deployment(server, port, slack, capture, config_path)


def aiohttp_command() -> list[str]:
    return [PYTHON, "-m", "tests.support.hosts.async_host", "{port}"]


def uvicorn_command(*extra: str) -> list[str]:
    return [
        PYTHON,
        "-m",
        "uvicorn",
        "tests.support.hosts.async_host:api",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--no-access-log",
        *extra,
    ]


def gunicorn_command(*extra: str) -> list[str]:
    return [
        PYTHON,
        "-m",
        "gunicorn",
        "--workers",
        "3",
        "--bind",
        "127.0.0.1:{port}",
        "--graceful-timeout",
        "20",
        *extra,
        "tests.support.hosts.flask_host:flask_app",
    ]


def instance_ids(capture: CaptureServer) -> set[str]:
    return {str(event["distinct_id"]) for event in capture.events}


# -- AsyncApp ----------------------------------------------------------------------------


@pytest.mark.parametrize("serve", ["aiohttp", "uvicorn-asgi"])
def test_async_app_gets_everything_a_sync_app_gets(config_path: Path, serve: str) -> None:
    command = aiohttp_command() if serve == "aiohttp" else uvicorn_command()
    with deployment(config_path, command) as bot:
        bot.wait_started()
        status = bot.answer("telemetry status")
        assert str(status.params["text"]).startswith("Telemetry is on"), status.params
        assert status.token == BOT_TOKEN  # through the request's AsyncWebClient
        assert status.blocks(), "the status is Block Kit"

        # The host's own async listeners still answer, the catch-all included.
        assert "host pong" in str(bot.answer("host ping", channel=GENERAL).params["text"])
        mention = bot.answer("<@U0BOT0001> hi", kind="app_mention")
        assert mention.params["text"] == "What's up?"

        # A command persists the config (work done off the event loop).
        saved = bot.answer("setconfig telemetryEnabled false")
        assert "saved to" in str(saved.params["text"]), saved.params
        assert read_config(config_path)["telemetryEnabled"] is False
        bot.answer("setconfig telemetryEnabled true")

        began = time.monotonic()
        code = bot.stop()
        took = time.monotonic() - began

    assert code in (0, -signal.SIGTERM), bot.server.describe()
    assert "Traceback" not in bot.server.stderr, bot.server.describe()
    assert took <= within(SHUTDOWN_TIMEOUT), f"SIGTERM to exit took {took:.2f} s"
    assert len(bot.capture.events_named("startup")) == 1, bot.capture.names
    assert len(bot.capture.events_named("shutdown")) == 1, (
        f"{bot.capture.names}\n{bot.server.describe()}"
    )
    assert instance_ids(bot.capture) == {read_config(config_path)["telemetryInstanceId"]}


def test_async_app_shutdown_is_bounded_when_posthog_hangs(config_path: Path) -> None:
    with deployment(config_path, uvicorn_command()) as bot:
        bot.wait_started()
        bot.capture.set_mode(HANG)
        began = time.monotonic()
        code = bot.stop()
        took = time.monotonic() - began
    assert code in (0, -signal.SIGTERM), bot.server.describe()
    assert took <= within(SHUTDOWN_TIMEOUT), f"SIGTERM to exit took {took:.2f} s"
    # Kept for the next start: the shutdown, and any heartbeat whose slot came while
    # PostHog hung (on a loaded machine a slot may pass between the start and the stop).
    kept = [event["event"] for event in outbox_events(config_path)]
    assert kept[-1:] == ["shutdown"] and set(kept[:-1]) <= {"heartbeat"}, kept


# -- several processes, one instance ---------------------------------------------------------


WORKER_SETUPS = {
    "gunicorn": gunicorn_command(),
    "gunicorn-preload": gunicorn_command("--preload"),
    "gunicorn-recycling": gunicorn_command("--max-requests", "4", "--max-requests-jitter", "2"),
    "uvicorn-workers": uvicorn_command("--workers", "2"),
}


# A recycled worker that leaves last waits, for most of the shutdown deadline, for
# another's replacement to arrive (docs/CONTRACT.md, "One instance"). On a loaded machine
# a worker's boot takes seconds: the recycling case gives it a deadline that covers one.
RECYCLING_SHUTDOWN_TIMEOUT = 15.0


@pytest.mark.parametrize("setup", sorted(WORKER_SETUPS))
def test_worker_processes_are_one_instance(config_path: Path, setup: str) -> None:
    timeout = RECYCLING_SHUTDOWN_TIMEOUT if setup == "gunicorn-recycling" else SHUTDOWN_TIMEOUT
    with deployment(config_path, WORKER_SETUPS[setup], shutdown_timeout=timeout) as bot:
        bot.wait_started()
        pongs = {str(bot.answer("host ping", channel=GENERAL).params["text"]) for _ in range(24)}
        if setup == "gunicorn-recycling":
            assert len(pongs) > 3, f"no worker was recycled: {pongs}"
        assert str(bot.answer("telemetry status").params["text"]).startswith("Telemetry is on")
        assert bot.capture.wait_for_events(2, "heartbeat", WAIT), bot.server.describe()

        code = bot.stop()

    assert code == 0, bot.server.describe()
    events = bot.capture.names
    assert len(bot.capture.events_named("startup")) == 1, f"{events}\n{bot.server.describe()}"
    assert len(bot.capture.events_named("shutdown")) == 1, f"{events}\n{bot.server.describe()}"
    # At most one heartbeat per slot of the instance's schedule, not one per worker.
    heartbeats = bot.capture.events_named("heartbeat")
    assert 2 <= len(heartbeats) <= bot.last_slot(), (len(heartbeats), bot.last_slot())
    assert instance_ids(bot.capture) == {read_config(config_path)["telemetryInstanceId"]}
    uuids = [event["uuid"] for event in bot.capture.events]
    assert len(set(uuids)) == len(uuids), "an event was delivered twice"
    assert outbox_events(config_path) == []


def test_an_opt_out_in_one_worker_stops_every_worker(config_path: Path) -> None:
    with deployment(config_path, gunicorn_command()) as bot:
        bot.wait_started()
        assert bot.capture.wait_for_events(1, "heartbeat", WAIT), bot.server.describe()

        answer = bot.answer("setconfig telemetryEnabled false")
        opted_out_at = time.monotonic()
        assert "saved to" in str(answer.params["text"]), answer.params
        slot = bot.last_slot()
        # Every worker wakes at each slot; two slots passing while off is the exposure.
        assert wait_until(lambda: bot.last_slot() >= slot + 2, WAIT), bot.server.describe()

        assert bot.stop() == 0, bot.server.describe()

    late = [
        record
        for record in bot.capture.requests
        if record.received_at > opted_out_at and record.events
    ]
    assert late == [], f"sent after the opt-out: {late}"
    assert bot.capture.events_named("shutdown") == []
    assert outbox_events(config_path) == []


# -- several apps, one process -------------------------------------------------------------


def test_two_apps_with_two_configs_share_one_shutdown_deadline(tmp_path: Path) -> None:
    configs = [tmp_path / name / "config.json" for name in ("a", "b")]
    for config in configs:
        write_config(config, {"telemetryNoticeShown": True})
    with CaptureServer(ACCEPT) as capture:
        env = {
            "TELEMETRY_HOST": capture.url,
            "TELEMETRY_API_KEY": "phc_deploy_test",
            "TELEMETRY_SHUTDOWN_TIMEOUT": f"{SHUTDOWN_TIMEOUT:g}",
            "PYTHONPATH": str(REPO),
        }
        command = [PYTHON, "-m", "tests.support.hosts.two_apps_host", *map(str, configs)]
        with started(command, env=env, cwd=tmp_path) as host:
            assert host.wait_for_output(lambda out: "ready" in out, WAIT), host.describe()
            assert capture.wait_for_events(2, "startup", WAIT), host.describe()
            capture.set_mode(HANG)

            began = time.monotonic()
            host.signal(signal.SIGTERM)
            code = host.wait_exit(STOP)
            took = time.monotonic() - began

    assert code == -signal.SIGTERM, host.describe()
    assert took <= within(SHUTDOWN_TIMEOUT), f"SIGTERM to exit took {took:.2f} s"
    hung = [record for record in capture.requests if record.status is None]
    assert len(hung) == 2, capture.requests
    # One deadline for the process: both shutdowns were under way at once, not one
    # after the other's deadline.
    first, second = sorted(record.received_at for record in hung)
    assert second - first < SHUTDOWN_TIMEOUT, (first, second)
    for config in configs:
        assert [event["event"] for event in outbox_events(config)] == ["shutdown"]
