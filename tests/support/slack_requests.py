"""Speaking to a Bolt app the way Slack does: Events API and interactivity payloads, signed
with the signing secret (slack_sdk's own ``SignatureVerifier``), POSTed over HTTP."""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from slack_sdk.signature import SignatureVerifier

from slackonos_telemetry.run.local_slack import ADMIN_CHANNEL_ID, BOT_USER_ID, TEAM_ID

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ADMIN_USER = "U0ADMIN01"
OTHER_USER = "U0OTHER01"
BOT_ID = "B0BOT0001"
APP_ID = "A0TELEMETRY"
POST_TIMEOUT_SECONDS = 30.0

_ts_counter = itertools.count(1)
_event_counter = itertools.count(1)


def new_ts() -> str:
    """A Slack message timestamp, unique in this process."""
    return f"{1_700_000_000 + next(_ts_counter)}.{next(_ts_counter):06d}"


# -- payloads --------------------------------------------------------------------------------


def message_event(
    text: str | None,
    *,
    channel: str = ADMIN_CHANNEL_ID,
    user: str | None = ADMIN_USER,
    ts: str | None = None,
    thread_ts: str | None = None,
    kind: str = "message",
    **extra: Any,
) -> dict[str, Any]:
    """A ``message`` (or ``app_mention``) event; ``extra`` fields are added as they are."""
    ts = ts or new_ts()
    event: dict[str, Any] = {
        "type": kind,
        "channel": channel,
        "ts": ts,
        "event_ts": ts,
        "team": TEAM_ID,
        "channel_type": "channel",
    }
    if text is not None:
        event["text"] = text
    if user is not None:
        event["user"] = user
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    event.update(extra)
    return event


def event_callback(event: dict[str, Any]) -> dict[str, Any]:
    """The Events API envelope of ``event``, with an event_id of its own."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{next(_event_counter):010d}",
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True, "enterprise_id": None}
        ],
    }


def event_body(event: dict[str, Any]) -> str:
    """The JSON body Slack posts for ``event``."""
    return json.dumps(event_callback(event))


def events_api_envelope(body: dict[str, Any], envelope_id: str) -> dict[str, Any]:
    """``body`` as Socket Mode sends it."""
    return {
        "envelope_id": envelope_id,
        "type": "events_api",
        "accepts_response_payload": False,
        "retry_attempt": 0,
        "retry_reason": "",
        "payload": body,
    }


def click_payload(
    button: dict[str, Any],
    *,
    channel: str,
    message_ts: str,
    user: str = ADMIN_USER,
    thread_ts: str | None = None,
    response_url: str = "http://127.0.0.1:9/unused",
) -> dict[str, Any]:
    """The block_actions payload of a click on ``button``."""
    message: dict[str, Any] = {
        "type": "message",
        "ts": message_ts,
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
    }
    if thread_ts is not None:
        message["thread_ts"] = thread_ts
    action = {
        "type": "button",
        "action_id": button["action_id"],
        "block_id": "telemetry-actions",
        "text": button.get("text"),
        "value": button.get("value"),
        "action_ts": f"{time.time():.6f}",
    }
    return {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "local"},
        "user": {"id": user, "username": "admin", "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": "1111.2222.3333",
        "channel": {"id": channel, "name": "channel"},
        "message": message,
        "response_url": response_url,
        "actions": [action],
    }


def click_body(button: dict[str, Any], **fields: Any) -> str:
    """The form body Slack posts for a click on ``button`` (``fields``: click_payload's)."""
    return form_body(click_payload(button, **fields))


def form_body(payload: dict[str, Any]) -> str:
    """An interactivity payload as the form body Slack posts."""
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


# -- signed and posted -------------------------------------------------------------------------


def signed_headers(body: str, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack signs ``body`` with (``timestamp``: now unless given)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


def post(
    url: str,
    body: str,
    headers: Mapping[str, str],
    content_type: str = "application/json",
    timeout: float = POST_TIMEOUT_SECONDS,
) -> int:
    """POST ``body``; the HTTP status, whatever it is."""
    request = urllib.request.Request(
        url,
        data=body.encode("utf-8"),
        method="POST",
        headers={"Content-Type": content_type, **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


def post_signed(
    url: str,
    body: str,
    secret: str = SECRET,
    content_type: str = "application/json",
    timeout: float = POST_TIMEOUT_SECONDS,
) -> int:
    """POST ``body`` signed as Slack signs it; the HTTP status."""
    return post(url, body, signed_headers(body, secret), content_type, timeout)


# Chat that only starts like a command: the host's, never the plugin's.
HOST_CHAT = (
    "Telemetry is down again, anyone?",
    "telemetry is off right?",
    "telemetry status please",
    "Telemetry: what does it collect?",
    "setconfig telemetryEnabled false please",
    "setconfig telemetryEnabled false, then restart the bot",
)
