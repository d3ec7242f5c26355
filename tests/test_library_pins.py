"""Pins on what the plugin takes from its libraries beyond their documented surface.

Each test fails on an upgrade that changes the behaviour the plugin relies on, so
the change is seen here, in one place, rather than as lost or doubled events:

- posthog ``request.batch_post`` forwards ``session=`` to ``request.post`` (our
  session never follows a redirect), posts one ``/batch/`` body, and raises
  ``APIError`` with ``status`` and ``retry_after``;
- a ``Posthog`` client with ``send=False`` hands each fully prepared message to
  ``before_send`` and starts no thread and makes no request;
- Bolt's ``AsyncApp`` is defined in ``slack_bolt.app.async_app`` (the plugin tells an
  AsyncApp apart without importing it, as that needs aiohttp).
"""

from __future__ import annotations

import inspect
import sys
import threading
from datetime import datetime, timezone
from typing import Any

import posthog.request
from posthog import Posthog

from slackonos_telemetry.telemetry.outcome import Outcome
from slackonos_telemetry.telemetry.sender import PosthogSender
from tests.support.capture import ACCEPT, RATE_LIMITED, REDIRECT_302, CaptureServer

UUID = "6f1c1f5e-3b7a-4c52-9a43-0d6c2a9e8b12"
INSTANCE = "6f1c1f5e-3b7a-4c52-9a43-0d6c2a9e8b11"


def _event() -> dict[str, Any]:
    return {
        "event": "startup",
        "distinct_id": INSTANCE,
        "uuid": UUID,
        "timestamp": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).isoformat(),
        "properties": {"instance_id": INSTANCE, "$process_person_profile": False},
    }


def test_batch_post_forwards_a_session_to_post() -> None:
    assert "session" in inspect.signature(posthog.request.post).parameters
    with CaptureServer(ACCEPT) as server:
        calls: list[str] = []

        class Recording(posthog.request.requests.Session):
            def request(self, *args: Any, **kwargs: Any) -> Any:
                calls.append(str(args[0]))
                return super().request(*args, **kwargs)

        session = Recording()
        posthog.request.batch_post("phc_pin", server.url, batch=[_event()], session=session)
        session.close()
    assert calls == ["POST"], "batch_post did not use the session given"
    assert [record.path for record in server.requests] == ["/batch/"]
    assert server.events[0]["uuid"] == UUID


def test_api_errors_carry_status_and_retry_after() -> None:
    with CaptureServer(RATE_LIMITED, retry_after=7) as server:
        sender = PosthogSender("phc_pin", server.url)
        result = sender.send([_event()], timeout=5)  # type: ignore[list-item]
        sender.close()
    assert (result.outcome, result.status, result.retry_after) == (Outcome.RETRY, 429, 7.0)


def test_a_redirect_is_answered_not_followed() -> None:
    with CaptureServer(REDIRECT_302) as server:
        sender = PosthogSender("phc_pin", server.url)
        result = sender.send([_event()], timeout=5)  # type: ignore[list-item]
        sender.close()
    assert (result.outcome, result.status) == (Outcome.RETRY, 302)
    assert [record.path for record in server.requests] == ["/batch/"]  # nothing followed


def test_send_false_prepares_messages_offline_through_before_send() -> None:
    before = set(threading.enumerate())
    prepared: list[dict[str, Any]] = []

    def keep(message: dict[str, Any]) -> dict[str, Any]:
        prepared.append(message)
        return message

    client = Posthog(
        "phc_pin",
        host="http://127.0.0.1:9",  # closed: a request would fail the capture below
        send=False,
        sync_mode=True,
        max_retries=0,
        before_send=keep,
    )
    event = _event()
    returned = client.capture(
        "startup",
        distinct_id=INSTANCE,
        properties=event["properties"],
        uuid=UUID,
        timestamp=datetime.fromisoformat(event["timestamp"]),
    )
    assert returned == UUID
    assert len(prepared) == 1
    message = prepared[0]
    assert message["uuid"] == UUID and message["distinct_id"] == INSTANCE
    assert message["properties"]["$lib"] == "posthog-python"
    assert set(threading.enumerate()) - before == set(), "the client started a thread"


def test_async_app_is_defined_where_the_plugin_looks_for_it() -> None:
    from slack_bolt.async_app import AsyncApp

    assert AsyncApp.__module__ == "slack_bolt.app.async_app"
    assert "slack_bolt.app.async_app" in sys.modules
