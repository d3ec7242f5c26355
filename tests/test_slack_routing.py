"""Which requests (docs/CONTRACT.md, "Auto-loading" and "Slack commands") the plugin
answers, where, how often, and which it leaves to the host; request verification;
registering and auto-loading."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import App, Say
from slack_sdk import WebClient

from slackonos_telemetry import load_plugins, register
from slackonos_telemetry.slack.plugin import TelemetryPlugin
from tests.support.bots import (
    ADMIN,
    BOT,
    GENERAL,
    Testbed,
    base_config,
    open_testbed,
    toggle_button,
)
from tests.support.slack_api import SlackStandIn
from tests.support.slack_requests import (
    ADMIN_USER,
    BOT_ID,
    SECRET,
    click_body,
    event_body,
    message_event,
    new_ts,
    post,
    signed_headers,
)


@pytest.fixture
def bed(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> Iterator[Testbed]:
    with open_testbed(monkeypatch, config_path) as testbed:
        yield testbed


def texts(bed: Testbed, method: str = "chat.postMessage") -> list[str]:
    return [str(call.params.get("text")) for call in bed.slack.calls(method)]


# -- where replies go --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["message", "app_mention"])
def test_reply_goes_to_the_thread_the_command_was_in(bed: Testbed, kind: str) -> None:
    bed.write_config(base_config())
    bot = bed.start()
    thread = new_ts()

    answer = bot.answer(f"<@{BOT}> telemetry preview", thread_ts=thread, kind=kind)

    assert answer.params["channel"] == ADMIN
    assert answer.params.get("thread_ts") == thread


def test_reply_to_a_top_level_command_is_top_level(bed: Testbed) -> None:
    bed.write_config(base_config())
    bot = bed.start()

    answer = bot.answer("setconfig telemetryEnabled")

    assert answer.params["channel"] == ADMIN
    assert "thread_ts" not in answer.params


@pytest.mark.parametrize("first", ["message", "app_mention"])
def test_message_arriving_as_message_and_app_mention_is_answered_once(
    bed: Testbed, first: str
) -> None:
    bed.write_config(base_config())
    bot = bed.start()
    ts = new_ts()
    second = "app_mention" if first == "message" else "message"

    for kind in (first, second):
        status = bot.send(f"<@{BOT}> telemetry preview", kind=kind, ts=ts)
        assert status == 200

    bot.settle()
    answers = texts(bed)
    assert len(answers) == 2, answers  # the preview once, then the marker
    assert "heartbeat" in answers[0]


# -- other channels -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "setconfig telemetryEnabled false",
        "setconfig telemetryEnabled",
        "telemetry status",
        "telemetry preview",
        "telemetry reset-id",
    ],
)
def test_outside_the_admin_channel_only_the_user_is_told(bed: Testbed, command: str) -> None:
    before = bed.write_config(base_config())
    bot = bed.start()
    thread = new_ts()

    answer = bot.ephemeral(command, channel=GENERAL, user="U0SOMEONE", thread_ts=thread)

    assert answer.params["channel"] == GENERAL
    assert answer.params["user"] == "U0SOMEONE"
    assert answer.params.get("thread_ts") == thread
    assert "admin" in answer.params["text"].lower()
    bot.settle()
    assert bed.config_bytes() == before
    assert [call.params["channel"] for call in bed.slack.calls("chat.postMessage")] == [ADMIN]
    assert len(bed.slack.calls("chat.postEphemeral")) == 1


def test_a_mention_outside_the_admin_channel_is_refused_too(bed: Testbed) -> None:
    before = bed.write_config(base_config())
    bot = bed.start()

    answer = bot.ephemeral(
        f"<@{BOT}> setconfig telemetryEnabled false", channel=GENERAL, kind="app_mention"
    )

    assert answer.params["channel"] == GENERAL and answer.params["user"] == ADMIN_USER
    bot.settle()
    assert bed.config_bytes() == before


# -- request verification -------------------------------------------------------------------


def _forged(body: str) -> dict[str, dict[str, str]]:
    good = signed_headers(body)
    stale_stamp = int(time.time()) - 10 * 60
    return {
        "wrong-secret": signed_headers(body, secret="not-the-signing-secret"),
        "tampered-body": signed_headers(body.replace("false", "true")),
        "stale-timestamp": signed_headers(body, timestamp=stale_stamp),
        "future-timestamp": signed_headers(body, timestamp=int(time.time()) + 10 * 60),
        "no-signature": {"X-Slack-Request-Timestamp": good["X-Slack-Request-Timestamp"]},
        "no-headers": {},
    }


@pytest.mark.parametrize(
    "forgery",
    [
        "wrong-secret",
        "tampered-body",
        "stale-timestamp",
        "future-timestamp",
        "no-signature",
        "no-headers",
    ],
)
def test_a_request_without_a_valid_signature_gets_401_and_does_nothing(
    bed: Testbed, forgery: str
) -> None:
    before = bed.write_config(base_config(telemetryEnabled=True))
    bot = bed.start()
    body = event_body(message_event("setconfig telemetryEnabled false"))
    calls_before = len(bed.slack.calls())

    status = post(bot.server.url, body, _forged(body)[forgery])

    assert status == 401
    assert len(bed.slack.calls()) == calls_before, "a Web API call for a forged request"
    bot.settle()
    assert bed.config_bytes() == before
    assert len(bed.slack.calls("chat.postMessage")) == 1  # the marker only
    assert bed.slack.calls("chat.postEphemeral") == []


def test_a_forged_button_click_gets_401_and_changes_nothing(bed: Testbed) -> None:
    before = bed.write_config(base_config(telemetryEnabled=True))
    bot = bed.start()
    status_message = bot.answer("telemetry status")
    button = toggle_button(status_message.blocks())
    body = click_body(button, channel=ADMIN, message_ts=new_ts())
    status = post(
        bot.server.url,
        body,
        signed_headers(body, secret="wrong"),
        "application/x-www-form-urlencoded",
    )

    assert status == 401
    bot.settle()
    assert bed.config_bytes() == before
    assert bed.slack.calls("chat.update") == []


# -- what is ignored ------------------------------------------------------------------------


def _ignored_events() -> dict[str, dict[str, Any]]:
    command = "setconfig telemetryEnabled false"
    edited = {"type": "message", "user": ADMIN_USER, "text": command, "ts": new_ts()}
    return {
        "own-message": message_event(command, user=BOT),
        "own-message-with-bot-id": message_event(command, user=BOT, bot_id=BOT_ID),
        "bot_message": message_event(
            command, user=None, subtype="bot_message", bot_id="B0OTHER01", username="jukebox"
        ),
        "other-bot-with-user": message_event(command, user="U0OTHERBOT", bot_id="B0OTHER01"),
        "message_changed": message_event(
            None,
            user=None,
            subtype="message_changed",
            hidden=True,
            message={**edited, "edited": {"user": ADMIN_USER, "ts": new_ts()}},
            previous_message={**edited, "text": "setconfig telemetryEnabled"},
        ),
        "message_deleted": message_event(
            None,
            user=None,
            subtype="message_deleted",
            hidden=True,
            deleted_ts=edited["ts"],
            previous_message=edited,
        ),
        "channel_join": message_event(
            f"<@{ADMIN_USER}> has joined the channel", subtype="channel_join"
        ),
    }


@pytest.mark.parametrize("kind", list(_ignored_events()))
def test_bot_messages_edits_and_deletions_are_ignored(bed: Testbed, kind: str) -> None:
    before = bed.write_config(base_config(telemetryEnabled=True))
    bot = bed.start()

    status = bot.send_event(_ignored_events()[kind])

    assert status != 401 and status < 500, status
    bot.settle()
    assert bed.config_bytes() == before
    assert len(bed.slack.calls("chat.postMessage")) == 1  # the marker only
    assert bed.slack.calls("chat.postEphemeral") == []


# -- living with the host's listeners ----------------------------------------------------


def test_host_setconfig_keys_stay_with_the_host(bed: Testbed) -> None:
    before = bed.write_config(base_config(telemetryEnabled=True))
    host_settings: dict[str, str] = {}
    pattern = re.compile(r"^\s*setconfig\s+(\S+)\s+(.+?)\s*$", re.IGNORECASE)

    def host(app: App) -> None:
        @app.message(pattern)
        def set_host_setting(say: Say, event: dict[str, Any]) -> None:
            match = pattern.match(str(event.get("text")))
            assert match is not None
            host_settings[match.group(1)] = match.group(2)
            say(text=f"host: {match.group(1)} = {match.group(2)}")

    bot = bed.start(setup=host)

    answer = bot.answer("setconfig gongLimit 5")

    assert answer.params["text"] == "host: gongLimit = 5"
    assert host_settings == {"gongLimit": "5"}
    assert bed.config_bytes() == before, "the plugin touched a host setting"

    # The plugin's own key is still the plugin's, though the host's pattern matches it.
    plugin_answer = bot.answer("setconfig telemetryEnabled false")
    assert not plugin_answer.params["text"].startswith("host:")
    assert bed.config()["telemetryEnabled"] is False
    bot.settle()
    assert "telemetryEnabled" not in host_settings
    assert len(texts(bed)) == 3, texts(bed)  # host, plugin, marker: one answer each


def test_catch_all_host_listener_added_first(bed: Testbed) -> None:
    bed.write_config(base_config(telemetryEnabled=True))
    heard: list[str] = []

    def host(app: App) -> None:
        @app.event("message")
        def anything(say: Say, event: dict[str, Any]) -> None:
            heard.append(str(event.get("text")))
            say(text=f"host heard: {event.get('text')}")

    bot = bed.start(setup=host)

    status_answer = bot.answer("telemetry status")
    assert status_answer.blocks() and status_answer.blocks()[0]["type"] == "header"
    saved = bot.answer("setconfig telemetryEnabled false")
    assert not saved.params["text"].startswith("host heard")
    assert bed.config()["telemetryEnabled"] is False

    other = bot.answer("play some jazz")
    assert other.params["text"] == "host heard: play some jazz"
    bot.settle()
    assert heard == ["play some jazz"], "telemetry commands must not reach the host too"
    assert len(texts(bed)) == 4


def test_catch_all_mention_listener_added_first(bed: Testbed) -> None:
    bed.write_config(base_config(telemetryEnabled=True))
    heard: list[str] = []

    def host(app: App) -> None:
        @app.event("app_mention")
        def mentioned(say: Say, event: dict[str, Any]) -> None:
            heard.append(str(event.get("text")))
            say(text="host: hi!")

    bot = bed.start(setup=host)

    saved = bot.answer(f"<@{BOT}> setconfig telemetryEnabled false", kind="app_mention")
    assert saved.params["text"] != "host: hi!"
    assert bed.config()["telemetryEnabled"] is False
    greeting = bot.answer(f"<@{BOT}> hello", kind="app_mention")
    assert greeting.params["text"] == "host: hi!"
    bot.settle()
    assert heard == [f"<@{BOT}> hello"]
    assert len(texts(bed)) == 3


def test_registering_twice_answers_once(bed: Testbed) -> None:
    bed.write_config(base_config(telemetryEnabled=True))
    plugins: list[TelemetryPlugin] = []

    def install(app: App) -> TelemetryPlugin:
        for _ in range(2):
            plugins.append(register(app, config_path=str(bed.config_path)))
        return plugins[0]

    bot = bed.start(install=install)

    assert plugins[0] is plugins[1]
    bot.answer("setconfig telemetryEnabled false")
    bot.answer("telemetry preview")
    bot.settle()
    assert len(bed.slack.calls("chat.postMessage")) == 3
    assert bed.config()["telemetryEnabled"] is False


# -- a second register -----------------------------------------------------------------------


@pytest.fixture
def quiet_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    """A Bolt app whose plugins send nothing (and so hook no signal in this process)."""
    monkeypatch.setenv("TELEMETRY_ENABLED", "false")
    with SlackStandIn() as slack:
        yield App(client=WebClient(token="xoxb-test", base_url=slack.url), signing_secret=SECRET)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and record.name.startswith("slackonos_telemetry")
    ]


def test_a_second_register_with_another_config_warns_naming_both_paths(
    quiet_app: App, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, other = tmp_path / "a" / "config.json", tmp_path / "b" / "config.json"
    plugin = register(quiet_app, config_path=str(first))
    try:
        with caplog.at_level(logging.WARNING, logger="slackonos_telemetry"):
            again = register(quiet_app, config_path=str(other))
        assert again is plugin
        assert plugin.config_path == first, "the first path is kept"
        (warning,) = _warnings(caplog)
        assert str(first) in warning and str(other) in warning, warning
    finally:
        plugin.shutdown(timeout=0.5)


@pytest.mark.parametrize("spelling", ["Path", "relative"])
def test_a_second_register_naming_the_same_file_another_way_does_not_warn(
    quiet_app: App, tmp_path: Path, caplog: pytest.LogCaptureFixture, spelling: str
) -> None:
    path = tmp_path / "config" / "config.json"  # the working directory is tmp_path
    plugin = register(quiet_app, config_path=str(path))
    try:
        same: str | Path = path if spelling == "Path" else "config/config.json"
        with caplog.at_level(logging.WARNING, logger="slackonos_telemetry"):
            register(quiet_app, config_path=same)
        assert _warnings(caplog) == []
    finally:
        plugin.shutdown(timeout=0.5)


# -- auto-loading -----------------------------------------------------------------------------


def test_entry_point_is_declared() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="slackonos.plugins")}
    assert found.get("telemetry") == "slackonos_telemetry:register"


def test_load_plugins_finds_and_registers_the_telemetry_plugin(bed: Testbed) -> None:
    bed.write_config(base_config(telemetryEnabled=True))
    loaded: list[Any] = []

    def install(app: App) -> Any:
        loaded.extend(load_plugins(app, config_path=str(bed.config_path)))
        return next(p for p in loaded if isinstance(p, TelemetryPlugin))

    bot = bed.start(install=install)

    telemetry = [p for p in loaded if isinstance(p, TelemetryPlugin)]
    assert len(telemetry) == 1
    assert telemetry[0].app is bot.app
    assert telemetry[0].config_path == bed.config_path
    assert register(bot.app, config_path=str(bed.config_path)) is telemetry[0]
    answer = bot.answer("setconfig telemetryEnabled false")
    assert str(bed.config_path) in answer.params["text"]
    assert bed.config()["telemetryEnabled"] is False


def test_the_signing_secret_is_the_apps(bed: Testbed) -> None:
    """Sanity check of the harness itself: a correctly signed request is accepted."""
    bed.write_config(base_config())
    bot = bed.start()
    body = event_body(message_event("setconfig telemetryEnabled"))
    assert post(bot.server.url, body, signed_headers(body, SECRET)) == 200
    assert bed.slack.wait_for_calls("chat.postMessage", 1)
