"""Batches of events to PostHog through the official SDK, with an answer we can act on.

The SDK does both halves of a send. Its client prepares each message exactly as
it would send it (its automatic properties included), in ``send=False`` mode: no
thread, no queue, no network; a ``before_send`` hook takes the prepared message
and keeps only the properties SPEC section 4 allows. Its ``batch_post`` then
posts up to a batch of them in one ``/batch/`` request, on a session of ours that
never follows a redirect: only a 2xx answer to the POST itself is acceptance.

The SDK's own retries are not used: the delivery loop owns retries, backoff and
deadlines, and a failed try raises here instead of being logged once per try.
"""

from __future__ import annotations

import enum
import logging
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slackonos_telemetry.telemetry.events import Event, wire_properties
from slackonos_telemetry.telemetry.log_once import quiet_repeated_sdk_logs

log = logging.getLogger(__name__)

BATCH_SIZE = 100
# Retried: the endpoint may answer differently later. Any other 4xx drops the event.
RETRY_STATUSES = frozenset({408, 429})


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    detail: str = ""
    status: int | None = None
    retry_after: float | None = None
    # Failed at once, before any answer (refused, no such host): trying again within
    # the same second will not help, so a shutdown stops trying and keeps the events.
    unreachable: bool = False


class PosthogSender:
    """Builds the SDK client on construction: construct it off the bot's main thread
    (the import costs 0.2-0.4 s of CPU) and before the last check of a send."""

    def __init__(self, api_key: str, host: str) -> None:
        from posthog import Posthog

        quiet_repeated_sdk_logs()
        self.api_key = api_key
        self.host = host
        self._prepared: list[dict[str, Any]] = []
        self._client: Any = Posthog(
            api_key,
            host=host,
            send=False,
            sync_mode=True,
            max_retries=0,
            disable_geoip=True,
            enable_exception_autocapture=False,
            before_send=self._keep_prepared,
        )
        self._session = _no_redirect_session()

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
        from posthog.request import APIError, batch_post

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
        except Exception as exc:  # the transport raises requests' errors
            return SendResult(
                Outcome.RETRY, f"{type(exc).__name__}: {exc}", unreachable=_unreachable(exc)
            )
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


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (a requests error) wraps a refused connection or a failed name lookup."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (ConnectionRefusedError, socket.gaierror)):
            return True
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        pending += list(current.args)
    return False


def _no_redirect_session() -> Any:
    import requests

    class NoRedirects(requests.Session):
        # requests follows a 301/302 answer to a POST with a bodiless GET, whose 200
        # would look like acceptance: the redirect itself is the answer here.
        def request(self, *args: Any, **kwargs: Any) -> Any:
            kwargs["allow_redirects"] = False
            return super().request(*args, **kwargs)

    return NoRedirects()


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
