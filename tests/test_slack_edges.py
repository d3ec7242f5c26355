"""The plugin at the edge of a Bolt app (slack/edges.py, middleware.py, async_middleware.py,
handling.py): what every message costs the host, FaaS mode, and Slack's retries.

- Every message any member posts passes the plugin before the ack. A 40,000-character
  message of any shape costs the host no more than a short one (measured against a short
  message in the same test), on a sync ``App`` and on an ``AsyncApp``, whose event loop
  answers the next message promptly; each reaches the host's own listeners untouched.
- With ``process_before_response`` (FaaS), the edge waits for the command at most
  FAAS_WAIT_SECONDS: a hanging Web API never holds the ack past Slack's 3 s.
- A retry of a changing command that lands on another worker (gunicorn, 3 workers) does
  not run it again; a read-only command claims and writes nothing.

Real Bolt apps over signed HTTP (in this process: the POSIX-lock rule holds, no lock
file of ours is opened here), the Slack stand-in, the capture server; gunicorn as a
real process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from slack_bolt import App
from slack_bolt.async_app import AsyncApp
from slack_sdk import WebClient
from slack_sdk.web.async_client import AsyncWebClient

from slackonos_telemetry import register
from slackonos_telemetry.run.local_slack import ADMIN_CHANNEL_ID, ApiCall
from tests.support.bots import ADMIN, BOT, HostListeners, Testbed, base_config, open_testbed
from tests.support.capture import CaptureServer
from tests.support.files import outbox_meta, read_config, write_config
from tests.support.processes import Process, free_port, started, wait_for_port
from tests.support.slack_api import SlackStandIn
from tests.support.slack_requests import (
    SECRET,
    event_body,
    event_callback,
    message_event,
    post,
    signed_headers,
)
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
WAIT = 15.0
CLIENT_TIMEOUT = 10.0  # every post here gives up after this: an ack that waited fails
WEB_API_HANG_SECONDS = 30.0  # what a hung Web API call costs (the WebClient's own timeout)
# How much longer than a short message's a hostile message's ack may take: the old parser
# took 16 s for 40,000 characters; a loaded machine adds noise, never 50 ms to a minimum.
ACK_MARGIN_SECONDS = 0.05
ROUNDS = 5
SHORT = "play some jazz"

LONG = 40_000
# Shapes that made the old parser backtrack or loop, at 40,000 characters and at the
# longest length the parser still reads (glance.MAX_COMMAND_LENGTH, 1,000).
HOSTILE: dict[str, tuple[str, str]] = {
    "telemetry-then-stars": ("message", "telemetry " + "*" * (LONG - 10)),
    "stars": ("message", "*" * LONG),
    "underscore-stars": ("message", "_*" * (LONG // 2)),
    "mentions": ("message", "<@U1>" * (LONG // 5)),
    "mentions-as-app-mention": ("app_mention", "<@U1>" * (LONG // 5)),
    "unclosed-mention": ("message", "<@" + "A" * (LONG - 2)),
    "bot-then-commands": ("app_mention", f"<@{BOT}> " + "telemetry status " * 2350),
    "entities": ("message", "&gt;" * (LONG // 4)),
    "backticks": ("message", "setconfig telemetryEnabled " + "`" * (LONG - 27)),
    "fences": ("message", "```" * (LONG // 3)),
    "stars-1000": ("message", "telemetry " + "*" * 990),
    "underscore-stars-1000": ("message", "_*" * 500),
    "mentions-1000": ("app_mention", "<@U1>" * 200),
    "unclosed-mention-1000": ("message", "<@" + "A" * 998),
    "entities-1000": ("message", "telemetry " + "&amp;" * 198),
}


def timed_post(url: str, text: str, kind: str = "message", **fields: Any) -> float:
    """Post ``text`` as Slack does; the seconds until the app's HTTP 200 (the ack)."""
    body = event_body(message_event(text, kind=kind, **fields))
    started = time.monotonic()
    status = post(url, body, signed_headers(body), timeout=CLIENT_TIMEOUT)
    took = time.monotonic() - started
    assert status == 200, f"HTTP {status} for a {len(text)}-character {kind}"
    return took


@dataclass
class AckCosts:
    short: float  # the fastest ack of a short message
    hostile: dict[str, float]  # the fastest ack of each hostile shape
    posted: Counter[tuple[str, str]]  # every (kind, text) posted, for what the host heard

    def assert_nothing_more(self) -> None:
        slower = {
            name: round(took - self.short, 4)
            for name, took in self.hostile.items()
            if took - self.short > ACK_MARGIN_SECONDS
        }
        assert not slower, f"acks slower than a short message's ({self.short:.4f} s): {slower}"


def ack_costs(url: str, rounds: int = ROUNDS) -> AckCosts:
    """Short and hostile messages posted in turns. A shape whose fastest ack stays behind
    the short one's by more than the margin is measured again (a loaded machine's noise
    passes, a cost does not), up to 3 more times."""
    short: list[float] = []
    hostile: dict[str, list[float]] = {name: [] for name in HOSTILE}
    posted: Counter[tuple[str, str]] = Counter()
    suspects = list(HOSTILE)
    for _ in range(4):
        for _ in range(rounds):
            for name in suspects:
                kind, text = HOSTILE[name]
                short.append(timed_post(url, SHORT))
                hostile[name].append(timed_post(url, text, kind))
                posted.update([("message", SHORT), (kind, text)])
        fastest = min(short)
        suspects = [name for name in HOSTILE if min(hostile[name]) - fastest > ACK_MARGIN_SECONDS]
        if not suspects:
            break
    return AckCosts(min(short), {name: min(times) for name, times in hostile.items()}, posted)


def assert_heard_untouched(ears: HostListeners, expected: Counter[tuple[str, str]]) -> None:
    # The host's listeners run after the ack (Bolt's executor, or the loop): bounded wait.
    wait_until(lambda: ears.counts() == expected, WAIT)
    found = ears.counts()
    missing = {(kind, len(text)): n for (kind, text), n in (expected - found).items()}
    extra = {(kind, len(text)): n for (kind, text), n in (found - expected).items()}
    assert found == expected, f"missing {missing}, unexpected {extra}"


@pytest.fixture
def bed(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> Iterator[Testbed]:
    with open_testbed(monkeypatch, config_path) as testbed:
        yield testbed


# -- every parse is linear: a long message costs the host nothing -------------------------


def test_a_long_message_of_any_shape_costs_a_sync_app_nothing(bed: Testbed) -> None:
    bed.write_config(base_config(adminChannel=ADMIN))
    ears = HostListeners(answers="ping")
    bot = bed.start(setup=ears.install)

    costs = ack_costs(bot.server.url)

    costs.assert_nothing_more()
    assert_heard_untouched(ears, costs.posted)
    # None was taken for a command: the plugin's first answer is to a real one.
    answer = bot.answer("telemetry status")
    assert [call.params["text"] for call in bed.slack.calls("chat.postMessage")] == [
        answer.params["text"]
    ]
    assert bed.slack.calls("chat.postEphemeral") == []


@dataclass
class AsyncBot:
    app: AsyncApp
    plugin: Any
    url: str
    slack: SlackStandIn

    def ping(self) -> float:
        """Post "host ping"; the seconds until the host's "host pong" reached Slack."""
        return self.ping_after(lambda: None)

    def ping_behind(self, kind: str, text: str) -> float:
        """Post ``text`` from another thread, and "host ping" right behind it; the seconds
        until "host pong" reached Slack."""
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            posted: list[concurrent.futures.Future[float]] = []
            took = self.ping_after(
                lambda: posted.append(pool.submit(timed_post, self.url, text, kind))
            )
            posted[0].result(CLIENT_TIMEOUT)
        return took

    def ping_after(self, first: Callable[[], None]) -> float:
        before = len(self.slack.calls("chat.postMessage"))
        started = time.monotonic()
        first()
        timed_post(self.url, "host ping", channel="C0GENERAL")
        calls = self.slack.wait_for_calls("chat.postMessage", before + 1, WAIT)
        took = time.monotonic() - started
        assert len(calls) > before, "the host never answered its ping"
        assert calls[before].params["text"] == "host pong", calls[before].params
        return took


@contextlib.contextmanager
def async_bot(
    bed: Testbed, *, faas: bool = False, setup: Callable[[AsyncApp], None] | None = None
) -> Iterator[AsyncBot]:
    """An AsyncApp with the plugin, served by aiohttp (Bolt's ``web_app``) on a loop thread."""
    app = AsyncApp(
        client=AsyncWebClient(token="xoxb-test", base_url=bed.slack.url),
        signing_secret=SECRET,
        process_before_response=faas,
    )
    if setup is not None:
        setup(app)
    plugin = register(app, config_path=str(bed.config_path))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-async-app", daemon=True)
    thread.start()

    def on_loop(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(WAIT)

    runner = web.AppRunner(app.web_app(path="/slack/events"))
    try:
        on_loop(runner.setup())
        on_loop(web.TCPSite(runner, "127.0.0.1", 0).start())
        host, port = runner.addresses[0][:2]
        assert plugin.start_now(WAIT), "plugin never started"
        yield AsyncBot(app, plugin, f"http://{host}:{port}/slack/events", bed.slack)
    finally:
        try:
            plugin.shutdown(timeout=0.5)
            # A Web API call left hanging ends (503) once the stand-in closes: the plugin's
            # worker, waiting on this loop, is free before the loop stops.
            bed.slack.close()
            on_loop(runner.cleanup())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(WAIT)
            if not thread.is_alive():  # (a loop still held by a parse is left to the GC)
                loop.close()


def test_a_long_message_costs_an_async_app_nothing_and_the_next_is_answered_promptly(
    bed: Testbed,
) -> None:
    bed.write_config(base_config(adminChannel=ADMIN))
    ears = HostListeners(answers="ping")
    with async_bot(bed, setup=ears.install_async) as bot:
        costs = ack_costs(bot.url, rounds=3)
        costs.assert_nothing_more()

        # The parse runs on the event loop: a message right behind a long one waits for
        # nothing (the old parser held the loop 15.7 s).
        usual = max(bot.ping() for _ in range(3))
        behind: dict[str, float] = {}
        for name in ("telemetry-then-stars", "underscore-stars", "mentions", "unclosed-mention"):
            behind[name] = bot.ping_behind(*HOSTILE[name])
        late = {name: round(took, 3) for name, took in behind.items() if took > usual + 1.0}
        assert not late, f"answered late behind a long message (usually {usual:.3f} s): {late}"

        expected = costs.posted.copy()
        expected[("message", "host ping")] += 3 + len(behind)
        for name in behind:
            expected[HOSTILE[name]] += 1
        assert_heard_untouched(ears, expected)


# -- FaaS mode: the ack within Slack's 3 s, whatever the Web API does ---------------------


def faas_app(bed: Testbed) -> App:
    client = WebClient(token="xoxb-test", base_url=bed.slack.url)
    return App(client=client, signing_secret=SECRET, process_before_response=True)


@pytest.mark.parametrize("method", ["chat.postMessage", "conversations.list"])
def test_faas_ack_never_waits_on_a_hanging_web_api(bed: Testbed, method: str) -> None:
    # conversations.list: adminChannel unset, the name "music-admin" is looked up.
    by_name = method == "conversations.list"
    bed.write_config(base_config() if by_name else base_config(adminChannel=ADMIN))
    bot = bed.start(app=faas_app(bed))
    if not by_name:
        # The control: with a working Web API, FaaS mode answers before the ack (once the
        # function returns, nothing of it may still run).
        timed_post(bot.server.url, "telemetry help")
        before = len(bed.slack.calls("chat.postMessage"))
        timed_post(bot.server.url, "telemetry status")
        assert len(bed.slack.calls("chat.postMessage")) == before + 1, "answered after the ack"

    bed.slack.fail(method, "hang")
    before = len(bed.slack.calls(method))
    took = timed_post(bot.server.url, "telemetry status")  # raises past CLIENT_TIMEOUT

    assert took < WEB_API_HANG_SECONDS / 3, f"the ack took {took:.1f} s"
    # The command did reach the Web API before the ack, and hangs there still.
    assert len(bed.slack.wait_for_calls(method, before + 1, WAIT)) > before


def test_faas_ack_of_an_async_app_never_waits_on_a_hanging_web_api(bed: Testbed) -> None:
    bed.write_config(base_config(adminChannel=ADMIN))
    with async_bot(bed, faas=True) as bot:
        timed_post(bot.url, "telemetry help")
        before = len(bed.slack.calls("chat.postMessage"))
        timed_post(bot.url, "telemetry status")
        assert len(bed.slack.calls("chat.postMessage")) == before + 1, "answered after the ack"

        bed.slack.fail("chat.postMessage", "hang")
        took = timed_post(bot.url, "telemetry status")

        assert took < WEB_API_HANG_SECONDS / 3, f"the ack took {took:.1f} s"
        assert len(bed.slack.wait_for_calls("chat.postMessage", before + 2, WAIT)) > before + 1


# -- Slack's retries across workers ------------------------------------------------------

GUNICORN_SECRET = "edges-signing-secret"
TAG_HEADER = "X-Test-Tag"
# gunicorn's access log: the worker's pid ("<1234>"), the retry number and our tag of each request.
ACCESS_LINE = re.compile(r"^access <(?P<pid>\d+)> retry=(?P<retry>\S+) tag=(?P<tag>\S+)$")


@dataclass
class Workers:
    server: Process
    url: str
    slack: SlackStandIn
    capture: CaptureServer
    config_path: Path
    markers: int = 0
    posted: int = 0

    def post(self, body: str, tag: str, retry: int = 0) -> int:
        self.posted += 1
        headers = {**signed_headers(body, GUNICORN_SECRET), TAG_HEADER: tag}
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return post(self.url, body, headers)

    def burst(self, bodies: list[str], tag: str, retry: int = 0) -> None:
        """Post all of ``bodies`` at once: gunicorn's sync workers take one each."""
        with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
            statuses = list(pool.map(lambda body: self.post(body, tag, retry), bodies))
        assert statuses == [200] * len(bodies), statuses

    def access(self) -> list[tuple[int, str, str]]:
        """(pid, retry, tag) of every request logged so far, in order."""
        found = []
        for line in self.server.lines():
            match = ACCESS_LINE.match(line)
            if match:
                found.append((int(match["pid"]), match["retry"], match["tag"]))
        return found

    def pids(self, tag: str) -> set[int]:
        """The workers that took a request tagged ``tag``."""
        return {pid for pid, _, logged in self.access() if logged == tag}

    def settle(self, tags: tuple[str, ...]) -> None:
        """Until every worker whose last request was tagged ``tags`` has answered a command
        posted after it: a worker runs the plugin's work in order, so all of its earlier
        work is done then. The markers are "telemetry help", each a message of its own."""
        assert wait_until(lambda: len(self.access()) >= self.posted, WAIT), self.access()
        for _ in range(8):
            last = {pid: tag for pid, _, tag in self.access()}
            if not any(tag in tags for tag in last.values()):
                break
            self.burst([callback_body("telemetry help") for _ in range(6)], "marker")
            self.markers += 6
            assert wait_until(lambda: len(self.access()) >= self.posted, WAIT), self.access()
        else:
            raise AssertionError(f"a worker never took a marker: {self.access()}")
        helps = self.markers
        assert wait_until(lambda: len(self.answers("Telemetry commands")) >= helps, WAIT), (
            self.server.describe()
        )

    def answers(self, prefix: str) -> list[ApiCall]:
        return [
            call
            for call in self.slack.calls("chat.postMessage")
            if str(call.params.get("text")).startswith(prefix)
        ]


def callback_body(text: str) -> str:
    return json.dumps(event_callback(message_event(text)))


@contextlib.contextmanager
def gunicorn_workers(config_path: Path) -> Iterator[Workers]:
    write_config(config_path, {"telemetryNoticeShown": True, "adminChannel": ADMIN})
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        "3",
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "5",
        "--access-logfile",
        "-",
        "--access-logformat",
        f"access %(p)s retry=%({{x-slack-retry-num}}i)s tag=%({{{TAG_HEADER.lower()}}}i)s",
        "tests.support.hosts.flask_host:flask_app",
    ]
    slack = SlackStandIn()
    with contextlib.closing(slack), CaptureServer() as capture:
        env = {
            "SLACK_BOT_TOKEN": "xoxb-edges-test",
            "SLACK_SIGNING_SECRET": GUNICORN_SECRET,
            "SLACK_API_URL": slack.url,
            "SLACKONOS_CONFIG": str(config_path),
            "TELEMETRY_HOST": capture.url,
            "TELEMETRY_API_KEY": "phc_edges_test",
            "TELEMETRY_SHUTDOWN_TIMEOUT": "1",
            "PYTHONPATH": str(REPO),
        }
        with started(command, env=env, cwd=config_path.parent) as server:
            wait_for_port(port, server, timeout=30)
            url = f"http://127.0.0.1:{port}/slack/events"
            workers = Workers(server, url, slack, capture, config_path)
            try:
                assert capture.wait_for_events(1, "startup", 30), server.describe()
                yield workers
            finally:
                # A graceful stop ends the workers too (a killed master leaves them to
                # notice alone, holding the output pipes meanwhile); killed if it hangs.
                server.signal(signal.SIGTERM)
                server.wait_exit(30)


def slack_events_claimed(config_path: Path) -> list[str]:
    """The messages claimed in the state folder (read without its lock)."""
    return list(outbox_meta(config_path).get("slackEvents", []))


def test_a_retried_command_runs_once_whichever_worker_each_retry_lands_on(
    config_path: Path,
) -> None:
    with gunicorn_workers(config_path) as workers:
        first_id = read_config(config_path)["telemetryInstanceId"]
        reset = event_callback(message_event("telemetry reset-id"))
        reset_body = json.dumps(reset)
        assert workers.post(reset_body, "reset") == 200
        for retry in (1, 2, 3):  # same body, same event_id; a new signature each time
            workers.burst([reset_body] * 4, "reset", retry)
        workers.settle(("reset",))
        landed_on = workers.pids("reset")
        config_after_reset = config_path.read_bytes()
        claimed_after_reset = slack_events_claimed(config_path)

        status = event_callback(message_event("telemetry status"))
        status_body = json.dumps(status)
        assert workers.post(status_body, "status") == 200
        workers.burst([status_body] * 6, "status", 1)
        workers.settle(("status",))
        status_answers = workers.answers("Telemetry is on")

        answers = workers.answers("New instance ID:")
        ephemeral = workers.slack.calls("chat.postEphemeral")

    assert len(landed_on) >= 2, f"every retry landed on one worker: {workers.access()}"
    assert len(answers) == 1, [call.params["text"] for call in answers]
    new_id = read_config(config_path)["telemetryInstanceId"]
    assert new_id != first_id and new_id in answers[0].params["text"], answers[0].params
    assert ephemeral == [], [call.params for call in ephemeral]
    reset_key = f"{ADMIN_CHANNEL_ID}:{reset['event']['ts']}"
    assert claimed_after_reset.count(reset_key) == 1, claimed_after_reset
    # A read-only command: answered (once per worker it landed on), nothing claimed,
    # nothing written.
    assert status_answers, "the status was never answered"
    assert slack_events_claimed(config_path) == claimed_after_reset
    assert config_path.read_bytes() == config_after_reset
