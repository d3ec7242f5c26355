"""The outbox (docs/CONTRACT.md): a TinyDB file in the state folder, written before an
event is handed to PostHog, at most 1,000 events (oldest dropped first, counted in
`status`), and a damaged file set aside rather than stopping telemetry for good.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tinydb import TinyDB

from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from slackonos_telemetry.telemetry.outbox import EVENTS_TABLE
from tests.support.capture import ACCEPT, REFUSE, CaptureServer, capture_server
from tests.support.cli import status_json
from tests.support.events import uuid_counts, uuids_of
from tests.support.files import make_state_folder, outbox_for, outbox_path, pending, read_config
from tests.support.trackers import running_tracker
from tests.support.waiting import wait_until

CAPACITY = 1000  # docs/CONTRACT.md, "Delivery"
INSTANCE = "22222222-2222-4222-8222-222222222222"


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with capture_server() as running:
        yield running


def _events(count: int, name: str = "heartbeat") -> list[dict[str, Any]]:
    facts = RuntimeFacts.gather("1.0", "outbox-test")
    return [make_event(name, INSTANCE, facts, float(n)) for n in range(count)]


def _fill(config_path: Path, events: list[dict[str, Any]]) -> None:
    """Events written straight into the outbox's TinyDB table, oldest first."""
    make_state_folder(config_path)
    database = TinyDB(outbox_path(config_path))
    try:
        database.table(EVENTS_TABLE).insert_multiple(events)
    finally:
        database.close()


def test_outbox_lives_in_the_state_folder_and_is_written_before_sending(
    server: CaptureServer, config_path: Path
) -> None:
    server.set_mode(REFUSE)
    with running_tracker(config_path, server.url):
        assert wait_until(lambda: pending(config_path) != [], 10), "nothing written"
        assert server.requests == []
        waiting = pending(config_path)
        assert [event["event"] for event in waiting] == ["startup"]
        # The file itself, as a person would open it, holds the event.
        text = outbox_path(config_path).read_text(encoding="utf-8")
        assert waiting[0]["uuid"] in text
        server.set_mode(ACCEPT)
        assert server.wait_for_events(1, name="startup", timeout=10)
        assert wait_until(lambda: pending(config_path) == [], 5)
    assert server.events_named("startup")[0]["uuid"] == waiting[0]["uuid"]
    assert uuid_counts(server)[waiting[0]["uuid"]] == 1


def test_outbox_keeps_at_most_1000_events_dropping_the_oldest(config_path: Path) -> None:
    old = _events(CAPACITY)
    _fill(config_path, old)
    outbox = outbox_for(config_path)
    assert outbox.stats().pending == CAPACITY
    newer = _events(3, "shutdown")
    for event in newer:
        outbox.add(event)
    kept = outbox.pending()
    assert len(kept) == CAPACITY
    assert uuids_of(kept) == uuids_of(old[3:]) + uuids_of(newer)  # oldest first, oldest gone
    status = status_json(config_path)
    assert status["outbox_pending"] == CAPACITY
    assert status["outbox_dropped"] == 3


def test_a_running_tracker_respects_the_capacity(server: CaptureServer, config_path: Path) -> None:
    old = _events(CAPACITY)
    _fill(config_path, old)
    server.set_mode(REFUSE)
    with running_tracker(config_path, server.url):
        assert wait_until(lambda: "startup" in {e["event"] for e in pending(config_path)}, 10)
        kept = pending(config_path)
    assert len(kept) <= CAPACITY
    assert old[0]["uuid"] not in uuids_of(kept)
    assert status_json(config_path)["outbox_dropped"] >= 1


DAMAGED = {
    "truncated-json": '{"events": {"1": {"event": "startup", "uuid": ',
    "not-an-object": '["events"]\n',
    "table-not-an-object": '{"events": ["startup"]}\n',
    "event-not-an-object": '{"events": {"1": "startup"}}\n',
}


@pytest.mark.parametrize("content", list(DAMAGED.values()), ids=list(DAMAGED))
def test_a_damaged_outbox_is_set_aside_and_a_fresh_one_used(
    server: CaptureServer, config_path: Path, content: str
) -> None:
    make_state_folder(config_path)
    outbox_path(config_path).write_text(content, encoding="utf-8")
    with running_tracker(config_path, server.url):
        assert server.wait_for_events(1, name="startup", timeout=6), server.requests
        assert wait_until(lambda: pending(config_path) == [], 5), pending(config_path)
    set_aside = [
        path
        for path in outbox_path(config_path).parent.iterdir()
        if path.name.startswith(outbox_path(config_path).name + ".corrupt-")
    ]
    assert [path.read_text(encoding="utf-8") for path in set_aside] == [content]
    assert json.loads(outbox_path(config_path).read_text(encoding="utf-8"))  # fresh, valid
    assert read_config(config_path)["telemetryInstanceId"]


def test_an_unusable_event_in_the_outbox_does_not_block_the_others(
    server: CaptureServer, config_path: Path
) -> None:
    # A TinyDB-valid file whose first event lacks what PostHog needs (no uuid,
    # no distinct_id): it can never be sent, and must not stop newer events.
    _fill(config_path, [{"event": "startup", "properties": {}}])
    with running_tracker(config_path, server.url):
        assert server.wait_for_events(1, name="startup", timeout=6), server.requests
        assert wait_until(lambda: pending(config_path) == [], 5), pending(config_path)
    assert all(event.get("uuid") for event in server.events)
