"""Moving events from the outbox to PostHog: at least once, never twice, never after an opt-out.

A pass sends the waiting events oldest first, up to BATCH_SIZE per request, and
removes each batch with one outbox write as soon as PostHog accepted it. It
stops at the first retryable failure and leaves the rest for the next pass. A
batch PostHog rejects (a 4xx other than 408 and 429) is tried again event by
event, so one bad event never blocks or drops the others.

Everything slow (importing the SDK, building its client) happens before the last
check. That check runs under the outbox lock right before each request: the settings
and the instance ID are read again, the consent gate is asked (``consent.hold``),
each event is checked for the wire, and the wire lock is taken before the outbox lock
is let go (``Outbox.sending``).
"""

from __future__ import annotations

import enum
import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from slackonos_telemetry.config.locking import LockTimeout
from slackonos_telemetry.config.settings import Settings
from slackonos_telemetry.forksafe import importing
from slackonos_telemetry.telemetry import consent
from slackonos_telemetry.telemetry.events import Event, Unsendable, checked_for_wire
from slackonos_telemetry.telemetry.log_once import OnceLog
from slackonos_telemetry.telemetry.outbox import Outbox, Selection
from slackonos_telemetry.telemetry.outcome import BATCH_SIZE, Outcome, SendResult

log = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT = 10.0
MAX_RETRY_AFTER = 3600.0
DRAIN_FIRST_PAUSE = 0.1
DRAIN_MAX_PAUSE = 1.0


class Sender(Protocol):
    api_key: str
    host: str

    def send(self, events: list[Event], timeout: float) -> SendResult: ...

    def prepare(self, event: Event) -> dict[str, Any]:
        """The message as it would go on the wire (for the debug print)."""
        ...


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


class StopReason(enum.Enum):
    """Why a pass ended."""

    EMPTY = "nothing left to send"
    FAILURE = "PostHog unreachable or busy"
    DEADLINE = "out of time"
    HELD = "sending is held"  # consent.hold said why: off, withheld, debug, the notice
    RETRY_AFTER = "PostHog asked us to wait"
    BUSY = "another process is sending"
    ERROR = "an unexpected error"


@dataclass(frozen=True)
class PassResult:
    stopped_by: StopReason
    delivered: int = 0
    rejected: int = 0
    failure: SendResult | None = None
    held: consent.Hold | None = None

    @property
    def should_retry(self) -> bool:
        return self.stopped_by in (
            StopReason.FAILURE,
            StopReason.RETRY_AFTER,
            StopReason.BUSY,
            StopReason.ERROR,
        )

    @property
    def retry_after(self) -> float | None:
        return self.failure.retry_after if self.failure else None

    def describe(self) -> str:
        if self.held is not None:
            return str(self.held)
        if self.failure is not None and self.failure.unreachable:
            return f"failed at once: {self.failure.detail}"
        detail = self.failure.detail if self.failure and self.failure.detail else ""
        return f"{self.stopped_by.value}: {detail}" if detail else self.stopped_by.value


@dataclass(frozen=True)
class DrainResult:
    delivered: int = 0
    rejected: int = 0
    last: PassResult | None = None
    # The last failure a server answered (an HTTP status): a later try the deadline cut
    # short says less about why events still wait.
    answered: SendResult | None = None

    def add(self, result: PassResult) -> DrainResult:
        failure = result.failure
        answered = failure if failure is not None and failure.status is not None else None
        return DrainResult(
            self.delivered + result.delivered,
            self.rejected + result.rejected,
            result,
            answered or self.answered,
        )


SettingsSource = Callable[[], Settings]
InstanceIdSource = Callable[[], str | None]
SenderFactory = Callable[[str, str], Sender]


def _sdk_sender(api_key: str, host: str) -> Sender:
    # The SDK (and requests) load here, on a thread of ours: a fork meanwhile waits.
    with importing():
        from slackonos_telemetry.telemetry.sender import PosthogSender

        return PosthogSender(api_key, host)


class Delivery:
    """Sends one outbox; shared by the tracker thread, the shutdown and ``flush``."""

    def __init__(
        self,
        outbox: Outbox,
        settings: SettingsSource,
        instance_id: InstanceIdSource,
        sender_factory: SenderFactory = _sdk_sender,
        once_log: OnceLog | None = None,
    ) -> None:
        self.outbox = outbox
        self._settings = settings
        self._instance_id = instance_id
        self._sender_factory = sender_factory
        self._sender: Sender | None = None
        self._once = once_log or OnceLog(log)
        # uuids PostHog accepted whose removal from the file failed: never sent again.
        self._accepted: set[str] = set()
        self._not_before = 0.0

    @property
    def sender_ready(self) -> bool:
        return self._sender is not None

    def prepare_sender(self, settings: Settings) -> Sender:
        """The SDK client for these settings; the first call imports posthog."""
        sender = self._sender
        if sender is None or (sender.api_key, sender.host) != (settings.api_key, settings.host):
            sender = self._sender = self._sender_factory(settings.api_key, settings.host)
        return sender

    def run_pass(
        self,
        deadline: float | None = None,
        wait_for_lock: float = 0.0,
        keep_going: Callable[[], bool] | None = None,
    ) -> PassResult:
        """Send what waits, until done, a retryable failure, or ``deadline`` (monotonic);
        ``keep_going`` is asked before each batch (a stopping tracker ends its pass)."""
        wait = self._not_before - time.monotonic()
        if wait > 0:  # PostHog's Retry-After holds for every caller, shutdown included
            told = SendResult(Outcome.RETRY, "PostHog asked us to wait", retry_after=wait)
            return PassResult(StopReason.RETRY_AFTER, failure=told)
        settings = self._settings()
        held = consent.hold(settings, self.outbox.meta())
        if held is not None:
            return PassResult(StopReason.HELD, held=held)
        sender = self.prepare_sender(settings)  # slow the first time: before any lock
        if deadline is not None and time.monotonic() >= deadline:
            return PassResult(StopReason.DEADLINE)
        try:
            with self.outbox.sender_lock.hold(timeout=_bounded(wait_for_lock, deadline)):
                return self._send_waiting(sender, deadline, keep_going)
        except LockTimeout:
            return PassResult(StopReason.BUSY)

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
            retry_after = result.retry_after
            if retry_after and time.monotonic() + retry_after >= deadline:
                return total  # the server asked us to wait past the deadline
            if result.failure is not None and result.failure.unreachable:
                return total  # nothing listens there: the events wait for the next start
            wait = max(pause, retry_after or 0.0)
            time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
            pause = min(pause * 2, DRAIN_MAX_PAUSE)

    def _send_waiting(
        self, sender: Sender, deadline: float | None, keep_going: Callable[[], bool] | None
    ) -> PassResult:
        delivered = rejected = 0
        batch_size = BATCH_SIZE
        while True:
            remaining = _remaining(deadline)
            if (remaining is not None and remaining <= 0) or (keep_going and not keep_going()):
                return self._ended(StopReason.DEADLINE, delivered, rejected)
            with self.outbox.sending(functools.partial(self._select, limit=batch_size)) as chosen:
                if not chosen.send:
                    if isinstance(chosen.blocked, consent.Hold):
                        return PassResult(StopReason.HELD, delivered, rejected, held=chosen.blocked)
                    self._forget_accepted()  # a removal that failed before: tried again
                    return self._ended(StopReason.EMPTY, delivered, rejected)
                timeout = DEFAULT_REQUEST_TIMEOUT if remaining is None else remaining
                result = sender.send(chosen.send, min(timeout, DEFAULT_REQUEST_TIMEOUT))
            uuids = {event["uuid"] for event in chosen.send}
            if result.outcome is Outcome.RETRY:
                self._once.warning(
                    "retry",
                    "telemetry: PostHog unreachable or busy (%s); events wait in the outbox",
                    result.detail,
                )
                if result.retry_after:
                    self._not_before = time.monotonic() + min(result.retry_after, MAX_RETRY_AFTER)
                return self._ended(StopReason.FAILURE, delivered, rejected, result)
            if result.outcome is Outcome.REJECTED and len(uuids) > 1:
                batch_size = 1  # find the bad one: the rest of this pass goes one by one
                continue
            if result.outcome is Outcome.REJECTED:
                rejected += 1
                self._once.warning(
                    f"rejected-{result.status}",
                    "telemetry: PostHog refused an event (%s); dropped it, not retried",
                    result.detail,
                )
            else:
                delivered += len(uuids)
                self._once.forget("retry")
            self._accepted |= uuids
            self._forget_accepted(delivered_now=result.outcome is Outcome.ACCEPTED)

    def _select(self, waiting: list[dict[str, Any]], meta: dict[str, Any], limit: int) -> Selection:
        """Under the outbox lock: what may be sent now, checked for the wire."""
        held = consent.hold(self._settings(), meta)
        if held is not None:
            return Selection(blocked=held)
        instance_id = self._instance_id()
        selection = Selection()
        for entry in waiting:
            entry_uuid = entry.get("uuid")
            if isinstance(entry_uuid, str) and entry_uuid in self._accepted:
                continue  # accepted before; its removal is retried below
            try:
                selection.send.append(checked_for_wire(entry, instance_id))
            except Unsendable as why:
                selection.unusable.append((entry, str(why)))
                continue
            if len(selection.send) >= limit:
                break
        if selection.unusable:
            self._once.warning(
                "unusable",
                "telemetry outbox %s: dropped %d entries that may not be sent (%s)",
                self.outbox.path,
                len(selection.unusable),
                selection.unusable[0][1],
            )
        return selection

    def _forget_accepted(self, delivered_now: bool = False) -> None:
        """Remove what PostHog accepted (and record when, in the same write)."""
        if not self._accepted:
            return
        when = datetime.now(timezone.utc).isoformat(timespec="seconds") if delivered_now else None
        try:
            self.outbox.remove(set(self._accepted), delivered_at=when)
        except OSError as exc:
            self._once.warning("remove", "telemetry: cannot update the outbox: %s", exc)
            return
        self._accepted.clear()

    def _ended(
        self,
        reason: StopReason,
        delivered: int,
        rejected: int,
        failure: SendResult | None = None,
    ) -> PassResult:
        return PassResult(reason, delivered, rejected, failure)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _bounded(wait: float, deadline: float | None) -> float:
    remaining = _remaining(deadline)
    return wait if remaining is None else max(0.0, min(wait, remaining))
