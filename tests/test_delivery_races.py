"""The opt-out and delivery races, in process and fast, through the ``Sender`` seam
(docs/CONTRACT.md, "Delivery" and "Off means off").

A scripted sender stands where the posthog SDK's sender stands: it answers as told and
can hold a request "on the wire" until the test lets it go, so each interleaving is
reached on purpose instead of by luck. Everything else is real: the outbox file, its
locks, the config file, the settings, the consent gate. The same behaviours are tested
on the real wire, with the real SDK, in test_delivery*.py and test_off_means_off.py.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from slackonos_telemetry.config.settings import Settings, resolve_settings
from slackonos_telemetry.telemetry import consent, opt_out
from slackonos_telemetry.telemetry.delivery import Delivery, StopReason
from slackonos_telemetry.telemetry.events import Event, RuntimeFacts, make_event
from slackonos_telemetry.telemetry.identity import instance_id_now
from slackonos_telemetry.telemetry.outbox import Wire
from slackonos_telemetry.telemetry.outcome import Outcome, SendResult
from tests.support.files import outbox_for

BOUND = 10.0  # the longest any wait here may take; far beyond what each step needs


@dataclass
class ScriptedSender:
    """A ``Sender``: records each request's events; answers ``answer``; while ``hold`` is
    set, a request stays on the wire until ``release``."""

    api_key: str = "phc_test"
    host: str = "http://127.0.0.1:9"
    answer: SendResult = field(default_factory=lambda: SendResult(Outcome.ACCEPTED, status=200))
    hold: bool = False
    sent: list[list[str]] = field(default_factory=list)
    on_the_wire: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def send(self, events: list[Event], timeout: float) -> SendResult:
        self.sent.append([event["uuid"] for event in events])
        if self.hold:
            self.on_the_wire.set()
            assert self.released.wait(BOUND), "the test never let the request go"
        return self.answer


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"telemetryInstanceId": str(uuid.uuid4())}), encoding="utf-8")
    return path


def _settings(config_path: Path) -> Settings:
    return resolve_settings(config_path, {"TELEMETRY_NOTICE_GRACE_SECONDS": "3600"})


def _delivery(config_path: Path, sender: ScriptedSender) -> Delivery:
    return Delivery(
        outbox_for(config_path),
        lambda: _settings(config_path),
        lambda: instance_id_now(_settings(config_path)),
        sender_factory=lambda _key, _host: sender,
    )


def _waiting(config_path: Path, count: int) -> list[str]:
    instance_id = instance_id_now(_settings(config_path))
    assert instance_id is not None
    facts = RuntimeFacts("1.0", "races", "linux", "6", "3.11")
    events = [make_event("heartbeat", instance_id, facts, 3600.0 * n) for n in range(count)]
    outbox = outbox_for(config_path)
    for event in events:
        outbox.add(event)
    return [event["uuid"] for event in events]


@pytest.fixture
def on_the_wire(config_path: Path) -> Iterator[tuple[ScriptedSender, threading.Thread]]:
    """A pass whose first request is held on the wire."""
    sender = ScriptedSender(hold=True)
    _waiting(config_path, 3)
    delivery = _delivery(config_path, sender)
    passing = threading.Thread(target=delivery.run_pass, daemon=True)
    passing.start()
    assert sender.on_the_wire.wait(BOUND)
    try:
        yield sender, passing
    finally:
        sender.released.set()
        passing.join(BOUND)


def test_an_opt_out_while_a_request_is_on_the_wire_says_so_and_no_request_follows(
    config_path: Path, on_the_wire: tuple[ScriptedSender, threading.Thread]
) -> None:
    sender, passing = on_the_wire

    change = opt_out.save_enabled(config_path, False, {})

    assert change.cleared is not None and change.cleared.wire is Wire.BUSY
    assert any("still on the wire" in line for line in change.lines()), change.lines()
    sender.released.set()
    passing.join(BOUND)
    delivery = _delivery(config_path, sender)
    assert delivery.run_pass().stopped_by is StopReason.HELD
    assert len(sender.sent) == 1, "a request started after the opt-out answered"
    assert outbox_for(config_path).pending() == []


def test_a_request_that_ends_while_the_opt_out_waits_is_reported_finished(
    config_path: Path, on_the_wire: tuple[ScriptedSender, threading.Thread]
) -> None:
    sender, _ = on_the_wire
    threading.Timer(0.05, sender.released.set).start()  # ends within the opt-out's wait

    change = opt_out.save_enabled(config_path, False, {})

    assert change.cleared is not None and change.cleared.wire is Wire.FINISHED


def test_reset_id_while_on_the_wire_retires_every_event_of_the_old_id(
    config_path: Path, on_the_wire: tuple[ScriptedSender, threading.Thread]
) -> None:
    sender, passing = on_the_wire
    retired = instance_id_now(_settings(config_path))

    change = opt_out.reset_instance_id(config_path, {})
    # An event of the old ID written after the reset (a stale writer) never leaves either.
    facts = RuntimeFacts("1.0", "races", "linux", "6", "3.11")
    assert retired is not None
    outbox_for(config_path).add(make_event("heartbeat", retired, facts))
    sender.released.set()
    passing.join(BOUND)
    sender.hold = False
    _delivery(config_path, sender).run_pass()

    assert change.previous == retired and change.current != retired
    assert len(sender.sent) == 1, sender.sent
    assert outbox_for(config_path).pending() == []


def test_events_accepted_but_not_removed_are_never_sent_again(config_path: Path) -> None:
    uuids = _waiting(config_path, 2)
    sender = ScriptedSender()
    delivery = _delivery(config_path, sender)
    outbox = delivery.outbox
    original = outbox.remove

    def failing_remove(found: set[str], delivered_at: str | None = None) -> int:
        raise OSError("the disk is full")

    outbox.remove = failing_remove  # type: ignore[method-assign]
    delivery.run_pass()
    outbox.remove = original  # type: ignore[method-assign]
    delivery.run_pass()

    assert sender.sent == [uuids], "an accepted event was sent again"
    assert outbox.pending() == []


def test_a_rejected_batch_is_tried_one_by_one_and_only_the_bad_one_dropped(
    config_path: Path,
) -> None:
    uuids = _waiting(config_path, 3)

    @dataclass
    class RejectsOne(ScriptedSender):
        def send(self, events: list[Event], timeout: float) -> SendResult:
            super().send(events, timeout)
            if uuids[1] in {event["uuid"] for event in events}:
                return SendResult(Outcome.REJECTED, "HTTP 400", 400)
            return SendResult(Outcome.ACCEPTED, status=200)

    sender = RejectsOne()
    result = _delivery(config_path, sender).run_pass()

    assert (result.delivered, result.rejected) == (2, 1)
    assert sender.sent[0] == uuids and sorted(sender.sent[1:]) == sorted([[u] for u in uuids])
    assert outbox_for(config_path).pending() == []


def test_retry_after_holds_every_caller_without_a_request(config_path: Path) -> None:
    _waiting(config_path, 1)
    sender = ScriptedSender(answer=SendResult(Outcome.RETRY, "HTTP 429", 429, retry_after=60))
    delivery = _delivery(config_path, sender)

    first = delivery.run_pass()
    second = delivery.run_pass()

    assert first.stopped_by is StopReason.FAILURE
    assert second.stopped_by is StopReason.RETRY_AFTER
    assert len(sender.sent) == 1, "a request started inside Retry-After"


def test_two_senders_in_one_process_never_send_an_event_twice(config_path: Path) -> None:
    uuids = _waiting(config_path, 250)
    sender = ScriptedSender()
    deliveries = [_delivery(config_path, sender) for _ in range(2)]
    threads = [
        threading.Thread(target=d.drain, args=(time.monotonic() + BOUND,)) for d in deliveries
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND * 2)

    sent = [event for request in sender.sent for event in request]
    assert sorted(sent) == sorted(uuids), "an event was lost or sent twice"


def test_the_first_run_notice_holds_every_request_until_its_grace_ends(config_path: Path) -> None:
    _waiting(config_path, 1)
    outbox = outbox_for(config_path)
    outbox.record(noticePostedAt=time.time())
    sender = ScriptedSender()

    held = _delivery(config_path, sender).run_pass()
    outbox.record(noticePostedAt=time.time() - 3601)
    passed = _delivery(config_path, sender).run_pass()

    assert held.stopped_by is StopReason.HELD and held.held is not None
    assert held.held.kind is consent.HoldKind.NOTICE
    assert passed.delivered == 1 and len(sender.sent) == 1


def test_a_config_error_withholds_and_discards_nothing(config_path: Path) -> None:
    uuids = _waiting(config_path, 2)
    config_path.write_text('{"telemetryEnabled": ', encoding="utf-8")  # caught mid-rewrite
    sender = ScriptedSender()

    result = _delivery(config_path, sender).run_pass()

    assert result.held is not None and result.held.kind is consent.HoldKind.WITHHELD
    assert sender.sent == []
    assert [event["uuid"] for event in outbox_for(config_path).pending()] == uuids
