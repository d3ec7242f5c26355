"""Host manners (docs/CONTRACT.md, "Living in the host's process"), never in the host's
way: the plugin claims only whole commands, never calls Slack's Web API before the ack,
tells an admin the truth when a lookup failed, takes an upper-case admin channel as an ID,
looks nothing up that no answer needs, survives any payload shape, and keeps a flush
within its deadline, the SDK's import included.

The real Bolt app over signed HTTP (Bolt's own one-at-a-time development server
too) with the Slack stand-in; the CLI as a real process against the capture server.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import pytest
import slack_bolt.app.app as bolt_app_module
from slack_bolt import App
from slack_bolt.app.app import SlackAppDevelopmentServer
from slack_sdk import WebClient

from slackonos_telemetry import register
from slackonos_telemetry.run.http_server import BoltHttpServer
from slackonos_telemetry.slack import worker
from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from tests.support.bots import (
    ADMIN,
    BOT,
    GENERAL,
    WAIT_SECONDS,
    HostListeners,
    Testbed,
    base_config,
    open_testbed,
)
from tests.support.capture import ACCEPT, HANG, capture_server
from tests.support.cli import run_cli
from tests.support.events import uuids_of
from tests.support.files import outbox_for, pending, write_config
from tests.support.slack_requests import (
    HOST_CHAT,
    SECRET,
    click_payload,
    event_body,
    form_body,
    message_event,
    post,
    signed_headers,
)
from tests.support.trackers import tracker_environ
from tests.support.waiting import within

# The longest an ack may take here: far below the stand-in's hang (60 s) and the
# WebClient's own timeout (30 s), so an ack that waited on the Web API cannot pass.
ACK_BOUND_SECONDS = 10.0
TOGGLE_ACTION_ID = "slackonos_telemetry_toggle"  # the status message's button


@pytest.fixture
def bed(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> Iterator[Testbed]:
    with open_testbed(monkeypatch, config_path) as testbed:
        yield testbed


def _drain_the_plugins_worker() -> None:
    # The plugin answers on one worker thread, in order: once a no-op ran there,
    # every answer (or Web API call) it was given before is done.
    worker.submit(lambda: None).result(WAIT_SECONDS)


# -- a message that only starts like a command is the host's --------------------------


@pytest.mark.parametrize("order", ["host-listener-first", "plugin-first"])
@pytest.mark.parametrize("channel", [GENERAL, ADMIN], ids=["general", "admin-channel"])
def test_chat_that_only_starts_like_a_command_reaches_the_host(
    bed: Testbed, channel: str, order: str
) -> None:
    bed.write_config(base_config(telemetryEnabled=True))
    before = bed.config_bytes()
    heard = HostListeners()

    def plugin_first(app: App) -> Any:
        plugin = register(app, config_path=str(bed.config_path))
        heard.install(app)
        return plugin

    if order == "plugin-first":
        bot = bed.start(install=plugin_first)
    else:
        bot = bed.start(setup=heard.install)

    for text in HOST_CHAT:
        answer = bot.answer(text, channel=channel)
        assert answer.params["text"] == f"host heard: {text}", (text, answer.params)
    mentioned = f"<@{BOT}> telemetry is broken again?"
    assert bot.answer(mentioned, channel=channel, kind="app_mention").params["text"] == (
        f"host heard: {mentioned}"
    )
    # The control: the whole command is the plugin's, in either channel.
    control = bot.next_call(
        "chat.postEphemeral" if channel == GENERAL else "chat.postMessage",
        lambda: bot.send("setconfig telemetryEnabled", channel=channel),
    )
    assert not control.params["text"].startswith("host heard"), control.params
    _drain_the_plugins_worker()

    assert heard.texts() == [*HOST_CHAT, mentioned]
    plugin_answers = [
        call
        for call in [*bed.slack.calls("chat.postMessage"), *bed.slack.calls("chat.postEphemeral")]
        if not str(call.params.get("text")).startswith("host heard")
    ]
    assert plugin_answers == [control], [c.params.get("text") for c in plugin_answers]
    assert bed.config_bytes() == before, "host chat changed the telemetry setting"


# -- no Web API call before the ack; a failed lookup is said to be one ----------------


@contextlib.contextmanager
def _bolt_development_server(app: App, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``app.start()``'s own server (one request at a time), bound to 127.0.0.1 instead of
    the 0.0.0.0 it hard-codes; yields its URL."""
    with monkeypatch.context() as patch:
        patch.setattr(
            bolt_app_module,
            "HTTPServer",
            lambda _address, handler: HTTPServer(("127.0.0.1", 0), handler),
        )
        server = SlackAppDevelopmentServer(
            port=0, path="/slack/events", app=app, http_server_logger_enabled=False
        )
    http = server._server  # the HTTPServer it made: the only way to stop it
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}/slack/events"
    finally:
        http.shutdown()
        thread.join(10)


def _signed_post(url: str, text: str, channel: str = ADMIN) -> int:
    body = event_body(message_event(text, channel=channel))
    return post(url, body, signed_headers(body), timeout=ACK_BOUND_SECONDS)


@pytest.mark.parametrize("server_kind", ["threaded", "bolt-development-server"])
def test_the_ack_and_the_hosts_messages_never_wait_for_the_web_api(
    bed: Testbed, monkeypatch: pytest.MonkeyPatch, server_kind: str
) -> None:
    bed.write_config(base_config())  # adminChannel unset: the name "music-admin"
    heard = HostListeners()
    bot = bed.start(setup=heard.install)
    bed.slack.fail("conversations.list", "hang")

    with contextlib.ExitStack() as stack:
        url = bot.server.url
        if server_kind == "bolt-development-server":
            url = stack.enter_context(_bolt_development_server(bot.app, monkeypatch))
        for command in ("telemetry status", "setconfig telemetryEnabled false"):
            # urllib raises on its timeout: an ack that waited on the Web API fails here.
            assert _signed_post(url, command) == 200
        # The admin check did go to the Web API, after the ack, and hangs there still.
        assert bed.slack.wait_for_calls("conversations.list", 1, WAIT_SECONDS)
        before = len(bed.slack.calls("chat.postMessage"))
        assert _signed_post(url, "play some jazz", channel=GENERAL) == 200
        calls = bed.slack.wait_for_calls("chat.postMessage", before + 1, WAIT_SECONDS)
        assert [c.params["text"] for c in calls[before:]] == ["host heard: play some jazz"]
    assert "telemetryEnabled" not in bed.config(), "changed before the admin check"


@pytest.mark.parametrize("how", ["http-500", "http-429", "not-json"])
def test_a_failed_admin_channel_lookup_is_never_called_the_wrong_channel(
    bed: Testbed, how: str
) -> None:
    bed.write_config(base_config())  # adminChannel unset: the name "music-admin"
    bot = bed.start()
    bed.slack.fail("conversations.list", how)

    for command in ("telemetry status", "setconfig telemetryEnabled false"):
        told = bot.ephemeral(command).params["text"]
        assert "could not check" in told.lower(), told
        assert "use it in" not in told.lower(), told
    assert "telemetryEnabled" not in bed.config(), "a command ran without the admin check"

    # A failure is not remembered: once Slack answers again, the admin is served at once.
    bed.slack.heal("conversations.list")
    status = bot.answer("telemetry status")
    assert status.params["channel"] == ADMIN and status.blocks(), status.params
    bot.answer("setconfig telemetryEnabled false")
    assert bed.config()["telemetryEnabled"] is False


# -- an admin channel with an upper-case letter is an ID ------------------------------


@pytest.mark.parametrize("configured", ["C111", "G0PRIVATE1", "#C111"])
def test_an_upper_case_admin_channel_is_an_id_and_needs_no_lookup(
    bed: Testbed, configured: str
) -> None:
    bed.write_config(base_config(adminChannel=configured))
    channel = configured.lstrip("#")
    bot = bed.start()

    status = bot.answer("telemetry status", channel=channel)
    saved = bot.answer("setconfig telemetryEnabled false", channel=channel)
    refused = bot.ephemeral("telemetry status", channel=ADMIN)

    assert status.params["channel"] == channel and status.blocks()
    assert "false" in saved.params["text"] and bed.config()["telemetryEnabled"] is False
    assert channel in refused.params["text"], refused.params["text"]
    assert bed.slack.calls("conversations.list") == []


# -- no lookup at start unless the notice is due --------------------------------------

START_CASES: dict[str, tuple[dict[str, Any], dict[str, str], int]] = {
    # name: (config, environment, conversations.list calls expected at start)
    "notice-already-shown": (base_config(), {}, 0),
    "off-in-the-config": (base_config(telemetryEnabled=False, telemetryNoticeShown=False), {}, 0),
    "off-in-the-environment": (base_config(telemetryNoticeShown=False), {"DO_NOT_TRACK": "1"}, 0),
    "notice-due": (base_config(telemetryNoticeShown=False), {}, 1),  # the control
}


@pytest.mark.parametrize("case", sorted(START_CASES))
def test_conversations_list_runs_at_start_only_for_a_notice_that_is_due(
    bed: Testbed, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    config, environment, expected = START_CASES[case]
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    bed.write_config(config)
    heard = HostListeners()

    bot = bed.start(setup=heard.install)  # returns once the start (and any notice) is done
    bot.answer("play some jazz", channel=GENERAL)
    _drain_the_plugins_worker()

    assert len(bed.slack.calls("conversations.list")) == expected
    notices = [c for c in bed.slack.calls("chat.postMessage") if c.params["channel"] == ADMIN]
    assert len(notices) == expected


# -- any payload shape is the host's or ignored, never HTTP 500 -----------------------

HOST_ACTION = {
    "type": "button",
    "action_id": "host_button",
    "block_id": "host-block",
    "text": {"type": "plain_text", "text": "Play"},
    "value": "play",
    "action_ts": "1700000000.000001",
}
TOGGLE = {**HOST_ACTION, "action_id": TOGGLE_ACTION_ID, "block_id": "telemetry-actions"}


def _click(**changes: Any) -> dict[str, Any]:
    payload = click_payload(HOST_ACTION, channel=ADMIN, message_ts="1700000000.000100")
    payload.update(copy.deepcopy(changes))
    return payload


CLICKS: dict[str, dict[str, Any]] = {
    "non-objects-after-the-hosts-action": _click(actions=[HOST_ACTION, "junk", None, 7, ["x"]]),
    "odd-toggles-after-the-hosts-action": _click(
        actions=[HOST_ACTION, {**TOGGLE, "value": None}, {**TOGGLE, "action_id": ["x"]}]
    ),
    "toggle-and-junk-channel-not-an-object": _click(
        actions=[{**TOGGLE, "value": "off"}, "junk"], channel=ADMIN
    ),
    "toggle-user-a-list": _click(actions=[{**TOGGLE, "value": "off"}], user=[ADMIN]),
    "toggle-value-a-list": _click(actions=[{**TOGGLE, "value": ["off"]}]),
    "toggle-value-unknown": _click(actions=[{**TOGGLE, "value": {"on": True}}]),
    "no-actions": {k: v for k, v in _click().items() if k != "actions"},
}


def _message(**fields: Any) -> dict[str, Any]:
    return message_event("telemetry status", channel=ADMIN) | fields


MESSAGES: dict[str, dict[str, Any]] = {
    "user-an-object": _message(user={"id": "U0ADMIN01"}),
    "channel-a-list": _message(channel=[ADMIN]),
    "text-a-list": _message(text=["telemetry", "status"]),
    "subtype-an-object": _message(subtype={"x": 1}),
}
# Still an admin's whole command, with odd fields beside it: the plugin's to answer.
ODD_COMMANDS: dict[str, dict[str, Any]] = {
    "ts-a-number": _message(ts=1700000000.5, event_ts=1700000000.5),
    "thread-ts-an-object": _message(thread_ts={"ts": "1"}),
    "team-a-list": _message(team=["T1"], channel_type=None),
}


def _synchronous_app(bed: Testbed) -> App:
    # Listeners run before Bolt answers, so what the host heard is known once it did.
    client = WebClient(token="xoxb-test", base_url=bed.slack.url)
    return App(client=client, signing_secret=SECRET, process_before_response=True)


@contextlib.contextmanager
def _bare_host(bed: Testbed, heard: HostListeners) -> Iterator[str]:
    """The same host without the plugin: what Bolt alone does with a payload."""
    app = _synchronous_app(bed)
    heard.install(app)
    server = BoltHttpServer(app, "127.0.0.1", 0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _outcomes(
    bed: Testbed, bodies: dict[str, tuple[str, str]], heard: HostListeners, url: str
) -> dict[str, tuple[int, int, int]]:
    """Per payload: (HTTP status, host messages heard, host clicks heard)."""
    found = {}
    for name, (body, content_type) in bodies.items():
        messages, actions = len(heard.texts()), len(heard.actions)
        status = post(url, body, signed_headers(body), content_type)
        _drain_the_plugins_worker()
        found[name] = (status, len(heard.texts()) - messages, len(heard.actions) - actions)
    return found


def test_odd_payload_shapes_reach_the_host_as_without_the_plugin(bed: Testbed) -> None:
    bed.write_config(base_config(telemetryEnabled=True))
    before = bed.config_bytes()
    bodies = {
        name: (
            form_body(payload),
            "application/x-www-form-urlencoded",
        )
        for name, payload in CLICKS.items()
    }
    bodies |= {name: (event_body(event), "application/json") for name, event in MESSAGES.items()}

    alone = HostListeners(answers="none")
    with _bare_host(bed, alone) as url:
        expected = _outcomes(bed, bodies, alone, url)
    heard = HostListeners(answers="none")
    bot = bed.start(app=_synchronous_app(bed), setup=heard.install)
    found = _outcomes(bed, bodies, heard, bot.server.url)

    assert found == expected
    assert all(found[name][0] != 500 for name in CLICKS), found
    # The control: the host's own click and the messages did reach it.
    assert found["non-objects-after-the-hosts-action"] == (200, 0, 1)
    assert bed.config_bytes() == before, "an odd payload switched telemetry"
    assert bed.slack.calls("chat.postEphemeral") == []
    assert bed.slack.calls("chat.postMessage") == []

    heard_before = list(heard.texts())
    for name, event in ODD_COMMANDS.items():
        answer = bot.next_call("chat.postMessage", lambda e=event: bot.send_event(e))
        assert answer.params["channel"] == ADMIN and answer.blocks(), (name, answer.params)
    assert heard.texts() == heard_before, "the plugin's own commands reached the host too"


# -- flush's deadline counts everything, the SDK's import included --------------------


def _waiting(config_path: Path, count: int = 2) -> list[str]:
    instance_id = str(uuid.uuid4())
    write_config(config_path, {"telemetryInstanceId": instance_id})
    facts = RuntimeFacts.gather("1.0", "x")
    events = [make_event("heartbeat", instance_id, facts, 3600.0 * n) for n in range(count)]
    for event in events:
        outbox_for(config_path).add(event)
    return uuids_of(events)


def test_flush_against_a_hanging_endpoint_ends_within_its_timeout_from_process_start(
    config_path: Path,
) -> None:
    waiting = _waiting(config_path)
    with capture_server(HANG) as server:
        started = time.monotonic()  # before the interpreter, the imports, the SDK
        result = run_cli(
            "--config", str(config_path), "flush", "--timeout", "1", env=tracker_environ(server.url)
        )
        took = time.monotonic() - started
        assert server.wait_for_request(0), "flush never tried"
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert took <= within(1.0), f"flush --timeout 1 took {took:.2f} s"
    assert uuids_of(pending(config_path)) == waiting


def test_a_flush_whose_deadline_passed_while_loading_the_sdk_starts_no_request(
    config_path: Path,
) -> None:
    # Loading the posthog SDK alone takes far longer than this (LIBRARY-NOTES: 0.2-0.4 s),
    # and the deadline counts from the command's start: no request may start after it.
    waiting = _waiting(config_path)
    with capture_server(ACCEPT) as server:
        result = run_cli(
            "--config",
            str(config_path),
            "flush",
            "--timeout",
            "0.02",
            env=tracker_environ(server.url),
        )
        assert server.events == [], "a request started after the deadline"
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and str(len(waiting)) in lines[0], result.stderr
    assert uuids_of(pending(config_path)) == waiting
