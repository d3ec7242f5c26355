"""The cheap first look at every request: False for nearly everything that is not ours.

It runs for every request the host gets, on the request's thread (or the event
loop), so it only looks at a couple of fields and imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

from slackonos_telemetry.slack.ids import COMMAND_WORDS, TOGGLE_ACTION_ID

# The longest command, "setconfig telemetryEnabled <value>", is a few dozen characters;
# with a mention, quote, fences and emphasis around it, it stays far below this. A longer
# message is host chat, refused before any look at its text (here and in the parser), so
# a 40,000-character message costs the host no more than a short one.
MAX_COMMAND_LENGTH = 1_000


def might_be_ours(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    kind = body.get("type")
    if kind == "event_callback":
        event = body.get("event")
        text = event.get("text") if isinstance(event, dict) else None
        if not isinstance(text, str) or len(text) > MAX_COMMAND_LENGTH:
            return False
        lowered = text.lower()
        return any(word in lowered for word in COMMAND_WORDS)
    if kind == "block_actions":
        actions = body.get("actions")
        return isinstance(actions, list) and any(
            isinstance(action, dict) and action.get("action_id") == TOGGLE_ACTION_ID
            for action in actions
        )
    return False
