"""Recognising the plugin's own requests among everything Slack sends the bot.

Any shape of payload is survived: what is not exactly what we look for (a field
of another type, an action that is not an object) is the host's, untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slackonos_telemetry.slack.commands import Command, parse_command
from slackonos_telemetry.slack.glance import might_be_ours
from slackonos_telemetry.slack.ids import TOGGLE_ACTION_ID, TURN_OFF, TURN_ON

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
        """How to name what the user did, in a sentence."""
        return f"`{self.command.words}`" if self.command else "The telemetry button"


def recognize(body: Any, bot_user_id: str | None) -> TelemetryRequest | None:
    """The plugin's request in ``body``, or None for anything the host should get."""
    if not might_be_ours(body):
        return None
    if body.get("type") == "event_callback":
        return _recognize_message(body["event"], bot_user_id)
    return _recognize_click(body)


def _recognize_message(event: dict[str, Any], bot_user_id: str | None) -> TelemetryRequest | None:
    kind = event.get("type")
    if kind not in ("message", "app_mention"):
        return None
    if kind == "message" and event.get("subtype") not in _HANDLED_SUBTYPES:
        return None  # edits, deletions, bot messages, joins...
    user, channel = _text(event.get("user")), _text(event.get("channel"))
    if event.get("bot_id") or not user or not channel or user == bot_user_id:
        return None
    command = parse_command(str(event.get("text")), bot_user_id, kind == "app_mention")
    if command is None:
        return None
    return TelemetryRequest(
        channel_id=channel,
        user_id=user,
        command=command,
        thread_ts=_text(event.get("thread_ts")),
        message_ts=_text(event.get("ts")),
    )


def _recognize_click(body: dict[str, Any]) -> TelemetryRequest | None:
    action = next(
        action
        for action in body["actions"]
        if isinstance(action, dict) and action.get("action_id") == TOGGLE_ACTION_ID
    )
    channel = _text(_field(body.get("channel"), "id"))
    user = _text(_field(body.get("user"), "id"))
    value = action.get("value")
    if not channel or not user or value not in (TURN_ON, TURN_OFF):
        return None
    message = body.get("message")
    return TelemetryRequest(
        channel_id=channel,
        user_id=user,
        turn_on=value == TURN_ON,
        thread_ts=_text(_field(message, "thread_ts")),
        message_ts=_text(_field(message, "ts")),
    )


def _field(container: Any, name: str) -> Any:
    return container.get(name) if isinstance(container, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
