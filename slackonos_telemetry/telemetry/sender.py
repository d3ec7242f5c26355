"""One event to PostHog through the official SDK, with an answer we can act on.

The SDK is used in sync mode with its own retries off: the delivery loop owns
retries, backoff and deadlines, and a failed try raises here (``debug`` set
after construction) instead of being logged by the SDK once per try.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from slackonos_telemetry.telemetry.log_once import quiet_repeated_sdk_logs

log = logging.getLogger(__name__)


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


class PosthogSender:
    """Builds the SDK client on first use; construct it off the bot's main thread."""

    def __init__(self, api_key: str, host: str) -> None:
        # The import costs 0.2-0.37 s of CPU: the caller decides when it is paid.
        from posthog import Posthog

        quiet_repeated_sdk_logs()
        self.api_key = api_key
        self.host = host
        self._client: Any = Posthog(
            api_key,
            host=host,
            sync_mode=True,
            max_retries=0,
            disable_geoip=True,
            enable_exception_autocapture=False,
        )
        self._client.debug = True

    def send(self, event: dict[str, Any], timeout: float) -> SendResult:
        from posthog.request import APIError

        self._client.timeout = max(timeout, 0.05)
        try:
            sent = self._client.capture(
                event["event"],
                distinct_id=event["distinct_id"],
                properties=event["properties"],
                uuid=event["uuid"],
                timestamp=event["timestamp"],
                disable_geoip=True,
            )
        except APIError as exc:
            return _api_error_result(exc)
        except Exception as exc:  # the SDK's transport raises requests' errors
            return SendResult(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        if sent is None:
            return SendResult(Outcome.RETRY, "the SDK did not take the event")
        return SendResult(Outcome.ACCEPTED)


def _api_error_result(exc: Any) -> SendResult:
    try:
        status = int(exc.status)
    except (TypeError, ValueError):
        return SendResult(Outcome.RETRY, f"HTTP error: {exc}")
    if 200 <= status < 300:
        return SendResult(Outcome.ACCEPTED, status=status)
    detail = f"HTTP {status}: {getattr(exc, 'message', '')}".rstrip(": ")
    if status == 429 or status >= 500:
        retry_after = getattr(exc, "retry_after", None)
        return SendResult(Outcome.RETRY, detail, status, retry_after)
    return SendResult(Outcome.REJECTED, detail, status)
