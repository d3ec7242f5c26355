"""Moving events from the outbox to PostHog: one pass at a time, at least once, never twice.

A pass sends the waiting events oldest first and removes each one as soon as
PostHog accepted it. It stops at the first retryable failure (the endpoint is
down or asks us to wait) and leaves the rest for the next pass.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from slackonos_telemetry.config.locking import LockTimeout
from slackonos_telemetry.config.settings import Settings
from slackonos_telemetry.telemetry.log_once import OnceLog
from slackonos_telemetry.telemetry.outbox import Outbox
from slackonos_telemetry.telemetry.sender import Outcome, PosthogSender, SendResult

log = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT = 10.0
MAX_RETRY_AFTER = 3600.0
DRAIN_FIRST_PAUSE = 0.1
DRAIN_MAX_PAUSE = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter; a server's Retry-After wins when longer."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * (2 ** max(failures - 1, 0)))
        # "Equal jitter": never less than half the backoff, so bots that failed
        # together do not retry together, and never hammer the endpoint.
        backoff = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None and retry_after > 0:
            return max(backoff, min(retry_after, MAX_RETRY_AFTER))
        return backoff


@dataclass(frozen=True)
class PassResult:
    delivered: int = 0
    rejected: int = 0
    discarded: int = 0
    failure: SendResult | None = None
    busy: bool = False
    stopped_by: str = ""

    @property
    def should_retry(self) -> bool:
        return self.failure is not None or self.busy


@dataclass(frozen=True)
class DrainResult:
    delivered: int = 0
    rejected: int = 0
    discarded: int = 0
    last: PassResult | None = None

    def add(self, result: PassResult) -> DrainResult:
        return DrainResult(
            self.delivered + result.delivered,
            self.rejected + result.rejected,
            self.discarded + result.discarded,
            result,
        )


SettingsSource = Callable[[], Settings]
SenderFactory = Callable[[str, str], PosthogSender]


class Delivery:
    """Sends the outbox; shared by the tracker thread, the shutdown and `flush`."""

    def __init__(
        self,
        outbox: Outbox,
        settings: SettingsSource,
        sender_factory: SenderFactory = PosthogSender,
        once_log: OnceLog | None = None,
    ) -> None:
        self.outbox = outbox
        self._settings = settings
        self._sender_factory = sender_factory
        self._sender: PosthogSender | None = None
        self._once = once_log or OnceLog(log)
        # uuids PostHog accepted whose removal from the file failed: never sent again.
        self._accepted: set[str] = set()
        self._not_before = 0.0

    @property
    def sender_ready(self) -> bool:
        return self._sender is not None

    def prepare_sender(self, settings: Settings) -> PosthogSender:
        """The SDK client for these settings; the first call imports posthog."""
        sender = self._sender
        if sender is None or (sender.api_key, sender.host) != (settings.api_key, settings.host):
            sender = self._sender = self._sender_factory(settings.api_key, settings.host)
        return sender

    def run_pass(self, deadline: float | None = None, wait_for_lock: float = 0.0) -> PassResult:
        """Send what waits, until done, a retryable failure, or ``deadline`` (monotonic)."""
        wait = self._not_before - time.monotonic()
        if wait > 0:  # PostHog's Retry-After holds for every caller, shutdown included
            told = SendResult(Outcome.RETRY, "PostHog asked us to wait", retry_after=wait)
            return PassResult(failure=told, stopped_by="retry-after")
        try:
            with self.outbox.sender_lock.hold(timeout=_bounded(wait_for_lock, deadline)):
                return self._send_waiting(deadline)
        except LockTimeout:
            return PassResult(busy=True, stopped_by="another process is sending")

    def drain(self, deadline: float) -> DrainResult:
        """Passes, with short pauses between failed ones, until the outbox is empty,
        sending stops being allowed, or ``deadline`` (monotonic) comes."""
        total = DrainResult()
        pause = DRAIN_FIRST_PAUSE
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return total
            result = self.run_pass(deadline, wait_for_lock=remaining)
            total = total.add(result)
            if not result.should_retry:
                return total
            retry_after = result.failure.retry_after if result.failure else None
            if retry_after and time.monotonic() + retry_after >= deadline:
                return total  # the server asked us to wait past the deadline
            wait = max(pause, retry_after or 0.0)
            time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
            pause = min(pause * 2, DRAIN_MAX_PAUSE)

    def _send_waiting(self, deadline: float | None) -> PassResult:
        delivered = rejected = 0
        unremovable: set[str] = set()
        # The outbox is read again before each send: an opt-out or a reset-id that
        # emptied it meanwhile is seen, and nothing it discarded is sent.
        while (event := self._next_event(unremovable)) is not None:
            settings = self._settings()
            if not settings.enabled:
                discarded = self.outbox.clear()
                return PassResult(delivered, rejected, discarded, stopped_by="disabled")
            if settings.debug:
                return PassResult(delivered, rejected, stopped_by="debug")
            remaining = _remaining(deadline)
            if remaining is not None and remaining <= 0:
                return PassResult(delivered, rejected, stopped_by="deadline")
            event_uuid = str(event["uuid"])
            if event_uuid in self._accepted:
                if not self._forget_accepted(event_uuid):
                    unremovable.add(event_uuid)
                continue
            timeout = DEFAULT_REQUEST_TIMEOUT if remaining is None else remaining
            result = self.prepare_sender(settings).send(
                event, min(timeout, DEFAULT_REQUEST_TIMEOUT)
            )
            if result.outcome is Outcome.RETRY:
                self._once.warning(
                    "retry",
                    "telemetry: PostHog unreachable or busy (%s); events wait in the outbox",
                    result.detail,
                )
                if result.retry_after:
                    self._not_before = time.monotonic() + min(result.retry_after, MAX_RETRY_AFTER)
                self._record(delivered)
                return PassResult(delivered, rejected, failure=result, stopped_by="failure")
            if result.outcome is Outcome.REJECTED:
                rejected += 1
                self._once.warning(
                    f"rejected-{result.status}",
                    "telemetry: PostHog refused an event (%s); dropped it, not retried",
                    result.detail,
                )
            else:
                delivered += 1
                self._once.forget("retry")
            self._accepted.add(event_uuid)
            if not self._forget_accepted(event_uuid):
                unremovable.add(event_uuid)
        self._record(delivered)
        return PassResult(delivered, rejected, stopped_by="empty")

    def _next_event(self, skip: set[str]) -> dict[str, Any] | None:
        for event in self.outbox.pending():
            if str(event["uuid"]) not in skip:
                return event
        return None

    def _forget_accepted(self, event_uuid: str) -> bool:
        try:
            self.outbox.remove(event_uuid)
        except OSError as exc:
            self._once.warning("remove", "telemetry: cannot update the outbox: %s", exc)
            return False
        self._accepted.discard(event_uuid)
        return True

    def _record(self, delivered: int) -> None:
        if not delivered:
            return
        try:
            self.outbox.record_delivery(datetime.now(timezone.utc).isoformat(timespec="seconds"))
        except OSError as exc:
            self._once.warning("remove", "telemetry: cannot update the outbox: %s", exc)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _bounded(wait: float, deadline: float | None) -> float:
    remaining = _remaining(deadline)
    return wait if remaining is None else max(0.0, min(wait, remaining))
