"""`manifest.yaml` (docs/CONTRACT.md, "Run modes") grants exactly what the listeners need:
every event the plugin reacts to is subscribed, every Web API method it calls has its
scope, and no scope or subscription goes unused. Held to `slack_surface` and, more to the
point, to what a real Bolt app with the plugin really does against a Slack stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient

from slackonos_telemetry import register
from slackonos_telemetry.run.local_slack import (
    ADMIN_CHANNEL_ID,
    BOT_USER_ID,
    GENERAL_CHANNEL_ID,
    ApiCall,
)
from slackonos_telemetry.slack.plugin import TelemetryPlugin
from slackonos_telemetry.slack.scopes import EVENT_SCOPES, INTERACTIVITY, METHOD_SCOPES
from tests.support.capture import ACCEPT, CaptureServer
from tests.support.files import read_config, write_config
from tests.support.processes import WAIT
from tests.support.slack_api import BOT_TOKEN, SlackStandIn
from tests.support.slack_requests import (
    ADMIN_USER,
    SECRET,
    click_payload,
    event_callback,
    message_event,
)

MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yaml"
PRIVATE_CHANNEL_ID = "G0PRIVATE1"
# Where Slack delivers a message event from, and the subscription that brings it.
MESSAGE_SUBSCRIPTIONS = {
    "channel": "message.channels",
    "group": "message.groups",
    "im": "message.im",
    "mpim": "message.mpim",
}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def bot_scopes(manifest: dict[str, Any]) -> list[str]:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert isinstance(scopes, list)
    return scopes


def bot_events(manifest: dict[str, Any]) -> list[str]:
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert isinstance(events, list)
    return events


# -- the manifest against the table of what the plugin asks of Slack ------------------------


def test_manifest_subscribes_exactly_the_events_of_slack_surface(
    manifest: dict[str, Any],
) -> None:
    events = bot_events(manifest)
    assert len(events) == len(set(events)), f"duplicate subscriptions: {events}"
    assert set(events) == set(EVENT_SCOPES)


def test_manifest_grants_exactly_the_scopes_events_and_methods_need(
    manifest: dict[str, Any],
) -> None:
    scopes = bot_scopes(manifest)
    assert len(scopes) == len(set(scopes)), f"duplicate scopes: {scopes}"
    needed_by_events = {EVENT_SCOPES[event] for event in bot_events(manifest)}
    needed_by_methods = {scope for needed in METHOD_SCOPES.values() for scope in needed}
    assert needed_by_events | needed_by_methods <= set(scopes), "a needed scope is missing"
    assert set(scopes) <= needed_by_events | needed_by_methods, "a scope nothing needs"


def test_manifest_turns_on_socket_mode_interactivity_and_a_bot_user(
    manifest: dict[str, Any],
) -> None:
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    assert "block_actions" in INTERACTIVITY
    bot_user = manifest["features"]["bot_user"]
    assert isinstance(bot_user, dict) and bot_user.get("display_name")


# -- the manifest against what the real app does --------------------------------------------


@dataclass
class RealApp:
    app: App
    plugin: TelemetryPlugin
    slack: SlackStandIn
    config_path: Path

    def dispatch(self, body: dict[str, Any]) -> list[ApiCall]:
        """Deliver ``body`` as Socket Mode does; the Web API calls it caused (the app
        runs listeners before it answers, so they are all made by then)."""
        before = len(self.slack.calls())
        response = self.app.dispatch(BoltRequest(body=json.dumps(body), mode="socket_mode"))
        calls = self.slack.calls()[before:]
        assert response.status in (200, 404), (response.status, response.body)
        return calls

    def say(self, text: str, **fields: Any) -> list[ApiCall]:
        return self.dispatch(event_callback(message_event(text, **fields)))


@pytest.fixture
def real_app(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> Iterator[RealApp]:
    channels = {
        ADMIN_CHANNEL_ID: "music-admin",
        GENERAL_CHANNEL_ID: "general",
        PRIVATE_CHANNEL_ID: "private-room",
    }
    with SlackStandIn(channels) as slack, CaptureServer(ACCEPT) as capture:
        monkeypatch.setenv("TELEMETRY_HOST", capture.url)
        monkeypatch.setenv("TELEMETRY_SHUTDOWN_TIMEOUT", "0.5")
        client = WebClient(token=BOT_TOKEN, base_url=slack.url)
        app = App(client=client, process_before_response=True, signing_secret=SECRET)
        plugin = register(app, config_path=str(config_path))
        try:
            yield RealApp(app, plugin, slack, config_path)
        finally:
            plugin.shutdown(timeout=0.5)


def _click(button: dict[str, Any], message_ts: str) -> dict[str, Any]:
    return click_payload(button, channel=ADMIN_CHANNEL_ID, message_ts=message_ts)


def _the_button(call: ApiCall) -> dict[str, Any]:
    buttons = [
        element
        for block in call.blocks()
        if block.get("type") == "actions"
        for element in block.get("elements", [])
        if element.get("type") == "button"
    ]
    assert len(buttons) == 1, call.blocks()
    return buttons[0]


def _subscription(event: dict[str, Any]) -> str:
    if event["type"] == "message":
        return MESSAGE_SUBSCRIPTIONS[event.get("channel_type", "channel")]
    return str(event["type"])


def test_what_the_real_app_does_is_what_the_manifest_grants(
    real_app: RealApp, manifest: dict[str, Any]
) -> None:
    # The first-run notice, posted from the plugin's own thread.
    notices = real_app.slack.wait_for_calls("chat.postMessage", 1, WAIT)
    assert notices, "no first-run notice"
    assert notices[0].params["channel"] == ADMIN_CHANNEL_ID

    reacted: dict[str, list[ApiCall]] = {}
    quiet: list[str] = []

    def deliver(event: dict[str, Any]) -> list[ApiCall]:
        calls = real_app.dispatch(event_callback(event))
        if calls:
            reacted.setdefault(_subscription(event), []).extend(calls)
        else:
            quiet.append(f"{event['type']}/{event.get('subtype') or event.get('channel_type')}")
        return calls

    # Every command, in the admin channel.
    (status,) = deliver(message_event("telemetry status"))
    assert status.method == "chat.postMessage"
    for command in ("telemetry preview", "telemetry reset-id", "telemetry"):
        assert [call.method for call in deliver(message_event(command))] == ["chat.postMessage"]
    mention = message_event(f"<@{BOT_USER_ID}> telemetry status", kind="app_mention")
    assert [call.method for call in deliver(mention)] == ["chat.postMessage"]
    # A command elsewhere: the user alone is told, in a public and a private channel.
    for channel, channel_type in ((GENERAL_CHANNEL_ID, "channel"), (PRIVATE_CHANNEL_ID, "group")):
        event = message_event("telemetry status", channel=channel, channel_type=channel_type)
        assert [call.method for call in deliver(event)] == ["chat.postEphemeral"]
    # The button on the status message.
    clicked = real_app.dispatch(_click(_the_button(status), "1700000000.000999"))
    assert {call.method for call in clicked} == {"chat.update", "chat.postEphemeral"}
    assert read_config(real_app.config_path)["telemetryEnabled"] is False
    assert [call.method for call in deliver(message_event("setconfig telemetryEnabled true"))] == [
        "chat.postMessage"
    ]
    # What the plugin leaves alone: it needs no subscription for these.
    for event in (
        {"type": "reaction_added", "user": ADMIN_USER, "reaction": "tada", "item": {}},
        {"type": "member_joined_channel", "user": ADMIN_USER, "channel": ADMIN_CHANNEL_ID},
        message_event("telemetry status", channel_type="channel") | {"subtype": "bot_message"},
        message_event("setconfig gongLimit 5"),
    ):
        deliver(event)

    subscribed = set(bot_events(manifest))
    assert set(reacted) <= subscribed, f"reacts to events not subscribed: {set(reacted)}"
    assert subscribed <= set(reacted), f"subscribed, never used: {subscribed - set(reacted)}"
    assert len(quiet) == 4, quiet
    assert clicked and "block_actions" in INTERACTIVITY
    assert manifest["settings"]["interactivity"]["is_enabled"] is True

    methods = {call.method for call in real_app.slack.calls()}
    assert methods <= set(METHOD_SCOPES), f"called without a scope: {methods - set(METHOD_SCOPES)}"
    assert set(METHOD_SCOPES) <= methods, f"granted, never called: {set(METHOD_SCOPES) - methods}"
    granted = set(bot_scopes(manifest))
    for method in methods:
        assert set(METHOD_SCOPES[method]) <= granted, method
    for subscription in reacted:
        assert EVENT_SCOPES[subscription] in granted, subscription
    assert all(call.token == BOT_TOKEN for call in real_app.slack.calls())


def test_the_run_host_with_its_plugins_needs_nothing_more(
    monkeypatch: pytest.MonkeyPatch, config_path: Path, manifest: dict[str, Any]
) -> None:
    """`run` serves the host bot's own listeners too: the manifest covers them."""
    from slackonos_telemetry.run.host_bot import build_host_app

    write_config(config_path, {"telemetryNoticeShown": True})
    with SlackStandIn() as slack, CaptureServer(ACCEPT) as capture:
        monkeypatch.setenv("TELEMETRY_HOST", capture.url)
        client = WebClient(token=BOT_TOKEN, base_url=slack.url)
        app = App(client=client, process_before_response=True, signing_secret=SECRET)
        plugins = build_host_app(app, config_path)
        try:
            bot = RealApp(app, plugins[0], slack, config_path)
            for text in ("help", "setconfig gongLimit 5", "telemetry status"):
                assert bot.say(text), f"no answer to {text!r}"
            mention = message_event(f"<@{BOT_USER_ID}> hello", kind="app_mention")
            assert bot.dispatch(event_callback(mention)), "no answer to a mention"
        finally:
            for plugin in plugins:
                plugin.shutdown(timeout=0.5)
        methods = {call.method for call in slack.calls()}

    assert methods <= set(METHOD_SCOPES), f"called without a scope: {methods - set(METHOD_SCOPES)}"
    granted = set(bot_scopes(manifest))
    assert {scope for method in methods for scope in METHOD_SCOPES[method]} <= granted
