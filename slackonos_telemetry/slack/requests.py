"""Recognising the plugin's own requests among everything Slack sends the bot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slackonos_telemetry.slack.commands import Command, parse_command
from slackonos_telemetry.slack.middleware import TOGGLE_ACTION_ID, TURN_ON

_HANDLED_SUBTYPES = (None, "thread_broadcast")


@dataclass(frozen=True)
class TelemetryRequest:
    """One of the plugin's own requests: a command message or a click on its button."""

    channel_id: str
    user_id: str
    command: Command | None = None
    turn_on: bool | None = None
    thread_ts: str | None = None
    message_ts: str | None = None

    @property
    def label(self) -> str:
        return self.command.words if self.command else "the telemetry button"


def recognize(body: dict[str, Any], bot_user_id: str | None) -> TelemetryRequest | None:
    """The plugin's request in ``body``, or None for anything the host should get."""
    if body.get("type") == "event_callback":
        return _recognize_message(body.get("event") or {}, bot_user_id)
    if body.get("type") == "block_actions":
        return _recognize_click(body)
    return None


def _recognize_message(event: dict[str, Any], bot_user_id: str | None) -> TelemetryRequest | None:
    kind = event.get("type")
    if kind not in ("message", "app_mention"):
        return None
    if kind == "message" and event.get("subtype") not in _HANDLED_SUBTYPES:
        return None  # edits, deletions, bot messages, joins...
    user, channel = event.get("user"), event.get("channel")
    if event.get("bot_id") or not user or not channel or user == bot_user_id:
        return None
    command = parse_command(str(event.get("text") or ""), bot_user_id, kind == "app_mention")
    if command is None:
        return None
    return TelemetryRequest(
        channel_id=str(channel),
        user_id=str(user),
        command=command,
        thread_ts=event.get("thread_ts"),
        message_ts=event.get("ts"),
    )


def _recognize_click(body: dict[str, Any]) -> TelemetryRequest | None:
    actions = body.get("actions") or []
    action = next((a for a in actions if a.get("action_id") == TOGGLE_ACTION_ID), None)
    channel = (body.get("channel") or {}).get("id")
    user = (body.get("user") or {}).get("id")
    if action is None or not channel or not user:
        return None
    message = body.get("message") or {}
    return TelemetryRequest(
        channel_id=str(channel),
        user_id=str(user),
        turn_on=action.get("value") == TURN_ON,
        thread_ts=message.get("thread_ts"),
        message_ts=message.get("ts"),
    )
