"""Delivery (docs/CONTRACT.md, "Delivery"): at least once and never twice through outages,
Retry-After honoured, 4xx dropped with one log line, events kept across a SIGKILL, and
nothing made before an opt-out ever leaving the machine after it.

Real posthog SDK over loopback to the capture server, real TinyDB files, real
processes for the CLI and for a bot that is killed.
"""

from __future__ import annotations

import itertools
import logging
import signal
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from tests.support.bots import open_testbed
from tests.support.capture import (
    ACCEPT,
    ERROR_500,
    RATE_LIMITED,
    REFUSE,
    UNAUTHORIZED,
    CaptureServer,
    capture_server,
)
from tests.support.cli import cli
from tests.support.events import own_properties, parse_utc, requested_uuids, uuid_counts, uuids_of
from tests.support.files import outbox_for, pending, read_config, write_config
from tests.support.trackers import running_tracker, tracker_environ, tracker_host
from tests.support.waiting import wait_until

RETRY_AFTER = 1.0
HEARTBEAT_EVERY_SECOND = {"TELEMETRY_HEARTBEAT_SECONDS": "1"}


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with capture_server() as running:
        yield running


def _warnings(caplog: pytest.LogCaptureFixture, prefix: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name.split(".")[0] == prefix and record.levelno >= logging.WARNING
    ]


def _old_events(config_path: Path, count: int) -> list[dict[str, Any]]:
    facts = RuntimeFacts.gather("1.0", "old")
    instance = "11111111-1111-4111-8111-111111111111"
    write_config(config_path, {"telemetryInstanceId": instance, "adminChannel": "C0123ABCD"})
    outbox = outbox_for(config_path)
    events = [make_event("heartbeat", instance, facts, 60.0 * n) for n in range(count)]
    for event in events:
        outbox.add(event)
    return events


def test_outage_then_recovery_delivers_every_event_exactly_once(
    server: CaptureServer, config_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="slackonos_telemetry")
    caplog.set_level(logging.DEBUG, logger="posthog")
    server.set_mode(ERROR_500)
    with running_tracker(config_path, server.url, env=HEARTBEAT_EVERY_SECOND) as tracker:
        assert wait_until(lambda: len(pending(config_path)) >= 3, 10), pending(config_path)
        assert server.wait_for(lambda s: len(s.requests) >= 2, timeout=5)
        server.set_mode(RATE_LIMITED, retry_after=RETRY_AFTER)
        assert server.wait_for(lambda s: any(r.status == 429 for r in s.requests), timeout=5)
        queued = uuids_of(pending(config_path))
        outage_warnings = [r.getMessage() for r in _warnings(caplog, "slackonos_telemetry")]
        assert len(outage_warnings) == 1, outage_warnings  # once, not once per try
        server.set_mode(ACCEPT)
        assert server.wait_for(lambda s: set(queued) <= set(uuids_of(s.events)), timeout=10)
        assert tracker.shutdown(timeout=5) is True

    assert pending(config_path) == []
    counts = uuid_counts(server)
    assert all(count == 1 for count in counts.values()), counts
    assert set(requested_uuids(server)) == set(counts)  # every event tried was delivered
    names = [event["event"] for event in server.events]
    assert names[0] == "startup" and names[-1] == "shutdown", names
    assert names.count("heartbeat") >= 2
    statuses = [record.status for record in server.requests]
    assert 500 in statuses and 429 in statuses and 200 in statuses
    _assert_retry_after_kept(server)
    assert _warnings(caplog, "posthog") == []


def test_retry_after_is_honoured(server: CaptureServer, config_path: Path) -> None:
    server.set_mode(RATE_LIMITED, retry_after=RETRY_AFTER)
    with running_tracker(config_path, server.url, env=HEARTBEAT_EVERY_SECOND):
        assert server.wait_for(lambda s: len(s.requests) >= 3, timeout=10), server.requests
        server.set_mode(ACCEPT)
        assert server.wait_for_events(2, timeout=10)
    _assert_retry_after_kept(server)
    assert [r.status for r in server.requests].count(429) >= 3


def _assert_retry_after_kept(server: CaptureServer) -> None:
    """No request reached the server sooner than Retry-After after a 429."""
    requests = server.requests
    for earlier, later in itertools.pairwise(requests):
        if earlier.status == 429:
            gap = later.received_at - earlier.received_at
            assert gap >= RETRY_AFTER, [(r.status, r.received_at) for r in requests]


def test_retry_after_is_honoured_by_the_shutdown(server: CaptureServer, config_path: Path) -> None:
    long_wait = 3.0
    server.set_mode(RATE_LIMITED, retry_after=long_wait)
    with running_tracker(config_path, server.url) as tracker:
        assert server.wait_for(lambda s: len(s.requests) >= 1, timeout=10)
        # Shutting down inside the Retry-After window: the server said wait.
        tracker.shutdown(timeout=1.0)
        server.set_mode(ACCEPT)
    first = server.requests[0]
    assert first.status == 429
    early = [r for r in server.requests[1:] if r.received_at - first.received_at < long_wait]
    assert early == [], [(r.status, r.received_at - first.received_at) for r in early]


def test_unauthorized_is_not_retried_and_logged_once(
    server: CaptureServer, config_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="slackonos_telemetry")
    caplog.set_level(logging.DEBUG, logger="posthog")
    server.set_mode(UNAUTHORIZED)
    with running_tracker(config_path, server.url, env=HEARTBEAT_EVERY_SECOND) as tracker:
        assert server.wait_for(lambda s: len(s.requests) >= 3, timeout=10), server.requests
        tracker.shutdown(timeout=3)
    tried = requested_uuids(server)
    assert len(tried) >= 4  # startup, two heartbeats, shutdown
    assert all(count == 1 for count in tried.values()), tried  # one request per event
    assert {record.status for record in server.requests} == {401}
    assert server.events == []
    assert pending(config_path) == []  # dropped, not kept for a retry
    logged = _warnings(caplog, "slackonos_telemetry")
    assert len(logged) == 1, [record.getMessage() for record in logged]
    assert "401" in logged[0].getMessage()
    sdk_records = [r for r in caplog.records if r.name.split(".")[0] == "posthog"]
    assert [r for r in sdk_records if r.levelno >= logging.INFO] == [], [
        r.getMessage() for r in sdk_records
    ]


def test_events_left_by_a_killed_process_are_sent_on_the_next_start(
    server: CaptureServer, config_path: Path
) -> None:
    server.set_mode(REFUSE)
    env = tracker_environ(server.url, **HEARTBEAT_EVERY_SECOND)
    with tracker_host(config_path, env=env) as host:
        assert wait_until(lambda: len(pending(config_path)) >= 2, 10), pending(config_path)
        before_kill = pending(config_path)
        host.signal(signal.SIGKILL)
        assert host.wait_exit(10) == -signal.SIGKILL
    assert server.events == []

    server.set_mode(ACCEPT)
    wanted = set(uuids_of(before_kill))
    with tracker_host(config_path, env=env):
        assert server.wait_for(lambda s: wanted <= set(uuids_of(s.events)), timeout=15), (
            server.events
        )
        assert wait_until(lambda: not wanted & set(uuids_of(pending(config_path))), 5)
    received = {event["uuid"]: event for event in server.events}
    counts = uuid_counts(server)
    for stored in before_kill:
        sent = received[stored["uuid"]]
        assert counts[stored["uuid"]] == 1
        assert sent["event"] == stored["event"]
        assert sent["distinct_id"] == stored["distinct_id"]
        assert parse_utc(sent["timestamp"]) == parse_utc(stored["timestamp"])
        assert own_properties(sent) == stored["properties"]


def test_disable_from_another_process_means_waiting_events_never_arrive(
    server: CaptureServer, config_path: Path
) -> None:
    server.set_mode(ERROR_500)
    with running_tracker(config_path, server.url, env=HEARTBEAT_EVERY_SECOND):
        assert wait_until(lambda: len(pending(config_path)) >= 3, 10), pending(config_path)
        waiting = set(uuids_of(pending(config_path)))
        cli(config_path, "disable")
        assert pending(config_path) == []
        server.set_mode(ACCEPT)
        enabled_at = datetime.now(timezone.utc)
        cli(config_path, "enable")
        # Delivery is oldest first: once an event made after `enable` arrived,
        # anything older still waiting would have arrived before it.
        assert server.wait_for(
            lambda s: any(parse_utc(e["timestamp"]) > enabled_at for e in s.events), timeout=10
        ), server.events
    arrived = set(uuids_of(server.events))
    assert not waiting & arrived
    made_before = [e for e in server.events if parse_utc(e["timestamp"]) < enabled_at]
    assert made_before == []


@pytest.mark.parametrize(
    "opt_out", [{"TELEMETRY_ENABLED": "false"}, {"DO_NOT_TRACK": "1"}], ids=["te-false", "dnt"]
)
def test_opt_out_in_the_environment_at_start_empties_the_outbox(
    server: CaptureServer, config_path: Path, opt_out: dict[str, str]
) -> None:
    old = _old_events(config_path, 3)
    assert len(pending(config_path)) == len(old)
    with running_tracker(config_path, server.url, env={**HEARTBEAT_EVERY_SECOND, **opt_out}):
        assert wait_until(lambda: pending(config_path) == [], 10), pending(config_path)
    assert server.requests == []
    assert read_config(config_path)["adminChannel"] == "C0123ABCD"


def test_hand_edited_opt_out_empties_the_outbox_while_running(
    server: CaptureServer, config_path: Path
) -> None:
    server.set_mode(REFUSE)
    with running_tracker(config_path, server.url, env=HEARTBEAT_EVERY_SECOND):
        assert wait_until(lambda: len(pending(config_path)) >= 2, 10), pending(config_path)
        waiting = set(uuids_of(pending(config_path)))
        config = read_config(config_path)
        write_config(config_path, {**config, "telemetryEnabled": False})
        assert wait_until(lambda: pending(config_path) == [], 6), pending(config_path)
        server.set_mode(ACCEPT)
        enabled_at = datetime.now(timezone.utc)
        write_config(config_path, {**config, "telemetryEnabled": True})
        assert server.wait_for(
            lambda s: any(parse_utc(e["timestamp"]) > enabled_at for e in s.events), timeout=10
        ), server.events
    assert not waiting & set(uuids_of(server.events))
    assert [e for e in server.events if parse_utc(e["timestamp"]) < enabled_at] == []


@pytest.mark.parametrize(
    ("environment", "discarded"),
    [({"DO_NOT_TRACK": "1"}, True), ({"TELEMETRY_ENABLED": "maybe"}, False)],
    ids=["opt-out", "not-understood"],
)
def test_a_plugin_started_with_the_environment_off_empties_what_waits_or_keeps_it(
    monkeypatch: pytest.MonkeyPatch,
    config_path: Path,
    environment: dict[str, str],
    discarded: bool,
) -> None:
    # register() on a host whose environment says no: nothing is tracked, and what an
    # earlier run left waiting never leaves after a clear no (but stays when in doubt).
    old = _old_events(config_path, 3)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with open_testbed(monkeypatch, config_path) as bed:
        bed.start()  # returns once the plugin's start is done
        left = pending(config_path)
        assert bed.capture.requests == []
    assert left == ([] if discarded else old), left
