"""The cheap first look at every request: False for nearly everything that is not ours.

It runs for every request the host gets, on the request's thread (or the event
loop), so it only looks at a couple of fields and imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

from slackonos_telemetry.slack.ids import COMMAND_WORDS, TOGGLE_ACTION_ID


def might_be_ours(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    kind = body.get("type")
    if kind == "event_callback":
        event = body.get("event")
        text = event.get("text") if isinstance(event, dict) else None
        return isinstance(text, str) and any(word in text.lower() for word in COMMAND_WORDS)
    if kind == "block_actions":
        actions = body.get("actions")
        return isinstance(actions, list) and any(
            isinstance(action, dict) and action.get("action_id") == TOGGLE_ACTION_ID
            for action in actions
        )
    return False
