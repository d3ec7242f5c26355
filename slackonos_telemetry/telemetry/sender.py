"""Batches of events to PostHog through the official SDK, with an answer we can act on.

The SDK does both halves of a send. Its client prepares each message exactly as it
would send it (its automatic properties included), in ``send=False`` mode: no thread,
no queue, no network; a ``before_send`` hook takes the prepared message and keeps only
the properties the allowlist allows (``events.py``). Its ``batch_post`` then posts up to
a batch of them in one ``/batch/`` request, on a session of ours (``http.py``): no
redirect followed, an overall deadline, a few KB of answer read. Only a 2xx answer to
the POST itself is acceptance.

The client is built once per sender, and a sender lives in one process (its delivery's):
the client's own at-fork hook, which would rebuild the SDK's queues and start its
feature-flag poller in every child the host forks, is not registered.

The SDK's own retries are not used: the delivery loop owns retries, backoff and
deadlines, and a failed try raises here instead of being logged once per try.
"""

from __future__ import annotations

import logging
import socket
from datetime import datetime
from typing import Any

from posthog import Posthog
from posthog.request import APIError, batch_post

from slackonos_telemetry.forksafe import importing
from slackonos_telemetry.telemetry.events import Event, wire_properties
from slackonos_telemetry.telemetry.http import BoundedSession, DeadlinePassed
from slackonos_telemetry.telemetry.log_once import quiet_repeated_sdk_logs
from slackonos_telemetry.telemetry.outcome import RETRY_STATUSES, Outcome, SendResult

log = logging.getLogger(__name__)


class _Preparer(Posthog):
    def _register_fork_handler(self) -> None:
        pass  # nothing of the SDK's runs in a child the host forks


class PosthogSender:
    """Builds the SDK client on construction: construct it off the bot's main thread
    (the import costs 0.2-0.4 s of CPU) and before the last check of a send."""

    def __init__(self, api_key: str, host: str) -> None:
        quiet_repeated_sdk_logs()
        self.api_key = api_key
        self.host = host
        self._prepared: list[dict[str, Any]] = []
        # What the SDK and requests would load on their first use, loaded here, where a
        # fork waits for our imports: the client, one message prepared, a request built.
        with importing():
            self._client: Any = _Preparer(
                api_key,
                host=host,
                send=False,
                sync_mode=True,
                max_retries=0,
                disable_geoip=True,
                enable_exception_autocapture=False,
                enable_local_evaluation=False,
                before_send=self._keep_prepared,
            )
            self.prepare(_WARM_UP_EVENT)
            self._session = BoundedSession()
            self._session.warm_up(f"{host.rstrip('/')}/batch/")

    def prepare(self, event: Event) -> dict[str, Any]:
        """The message the SDK would send for ``event``, limited to the allowed properties."""
        self._prepared.clear()
        self._client.capture(
            event["event"],
            distinct_id=event["distinct_id"],
            properties=event["properties"],
            uuid=event["uuid"],
            # A datetime: posthog before 7.x's later releases takes no ISO string here.
            timestamp=datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")),
            disable_geoip=True,
        )
        if len(self._prepared) != 1:
            raise RuntimeError("the posthog SDK did not prepare the event")
        return self._prepared.pop()

    def send(self, events: list[Event], timeout: float) -> SendResult:
        """One ``/batch/`` request carrying ``events``; never raises."""
        try:
            batch = [self.prepare(event) for event in events]
            response = batch_post(
                self.api_key,
                self.host,
                gzip=False,
                timeout=max(timeout, 0.05),
                batch=batch,
                session=self._session,
            )
        except APIError as exc:
            return _api_error_result(exc)
        except DeadlinePassed as exc:
            return SendResult(Outcome.RETRY, str(exc))
        except Exception as exc:  # the transport raises requests' errors
            reason = _unreachable(exc)
            if reason:
                return SendResult(Outcome.RETRY, reason, unreachable=True)
            return SendResult(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        return SendResult(Outcome.ACCEPTED, status=response.status_code)

    def close(self) -> None:
        self._session.close()

    def _keep_prepared(self, message: dict[str, Any]) -> dict[str, Any]:
        kept = {
            "event": message.get("event"),
            "distinct_id": message.get("distinct_id"),
            "uuid": message.get("uuid"),
            "timestamp": message.get("timestamp"),
            "properties": wire_properties(
                dict(message.get("properties") or {}), str(message.get("event"))
            ),
        }
        self._prepared.append(kept)
        return kept


_WARM_UP_EVENT: Event = {
    "event": "startup",
    "distinct_id": "00000000-0000-4000-8000-000000000000",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "timestamp": "2026-01-01T00:00:00+00:00",
    "properties": {},
}


def _unreachable(exc: BaseException) -> str | None:
    """Why nothing could be reached, when ``exc`` (a requests error) wraps a refused
    connection or a failed name lookup; else None."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return "the host name does not resolve"
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        pending += list(current.args)
    return None


def _api_error_result(exc: Any) -> SendResult:
    try:
        status = int(exc.status)
    except (TypeError, ValueError):
        return SendResult(Outcome.RETRY, f"HTTP error: {exc}")
    if 200 <= status < 300:
        return SendResult(Outcome.ACCEPTED, status=status)
    message = str(getattr(exc, "message", "") or "")[:200]
    detail = f"HTTP {status}: {message}".rstrip(": ")
    if 300 <= status < 400:
        detail = (
            f"HTTP {status}: PostHog answered with a redirect, which is not acceptance; "
            "set telemetryHost to the address it points to"
        )
        return SendResult(Outcome.RETRY, detail, status)
    if status in RETRY_STATUSES or status >= 500:
        retry_after = getattr(exc, "retry_after", None)
        return SendResult(Outcome.RETRY, detail, status, retry_after)
    return SendResult(Outcome.REJECTED, detail, status)
