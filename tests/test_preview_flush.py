"""SPEC section 7, `preview` and `flush`: the exact JSON handed to the SDK, and sending
the outbox now with a bounded wait. The CLI runs as `python -m slackonos_telemetry`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from tests.support.capture import (
    HANG,
    REFUSE,
    CaptureServer,
    capture_server,
)
from tests.support.environment import run_cli
from tests.support.trackers import (
    EVENT_KEYS,
    EVENT_PROPERTIES,
    SDK_PROPERTIES,
    assert_uuid4,
    host_environ,
    outbox_for,
    own_properties,
    parse_utc,
    pending,
    running_tracker,
    uuid_counts,
    uuids_of,
    write_config,
)
from tests.support.waiting import within

RELEASE = "v-preview-test"
INSTANCE = "33333333-3333-4333-8333-333333333333"


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with capture_server() as running:
        yield running


def _preview(config_path: Path, *args: str) -> dict[str, Any]:
    result = run_cli("--config", str(config_path), "preview", *args, env=_env())
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert isinstance(data, dict)
    return data


def _env(**extra: str) -> dict[str, str]:
    return {"SLACKONOS_RELEASE": RELEASE, **extra}


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize("name", ["startup", "heartbeat", "shutdown"])
def test_preview_prints_the_event_as_it_goes_on_the_wire(config_path: Path, name: str) -> None:
    write_config(config_path, {"telemetryInstanceId": INSTANCE})
    before = sorted(path.name for path in config_path.parent.iterdir())
    event = _preview(config_path, name)
    instance_id = INSTANCE
    assert set(event) == EVENT_KEYS
    assert event["event"] == name
    assert event["distinct_id"] == instance_id
    assert set(own_properties(event)) == EVENT_PROPERTIES[name]
    # The SDK's own properties, computed by the installed SDK, are part of it.
    assert {"$lib", "$lib_version", "$geoip_disable"} <= set(event["properties"])
    assert set(event["properties"]) - EVENT_PROPERTIES[name] <= SDK_PROPERTIES
    assert event["properties"]["instance_id"] == instance_id
    assert event["properties"]["release"] == RELEASE
    assert event["properties"]["$process_person_profile"] is False
    assert_uuid4(event["uuid"])
    parse_utc(event["timestamp"])
    assert pending(config_path) == []  # a preview sends and stores nothing
    assert sorted(path.name for path in config_path.parent.iterdir()) == before


def test_preview_defaults_to_the_heartbeat(config_path: Path) -> None:
    assert _preview(config_path)["event"] == "heartbeat"


def test_preview_matches_what_the_server_receives(server: CaptureServer, config_path: Path) -> None:
    write_config(config_path, {"telemetryInstanceId": INSTANCE})
    previews = {name: _preview(config_path, name) for name in EVENT_PROPERTIES}
    env = {"TELEMETRY_HEARTBEAT_SECONDS": "1", "SLACKONOS_RELEASE": RELEASE}
    with running_tracker(config_path, server.url, env=env) as tracker:
        assert server.wait_for_events(1, name="heartbeat", timeout=10)
        assert tracker.shutdown(timeout=5)
    for name, preview in previews.items():
        received = server.events_named(name)[0]
        assert set(preview) == set(received), name
        assert preview["event"] == received["event"]
        assert preview["distinct_id"] == received["distinct_id"]
        assert preview["properties"] == received["properties"], name


def test_preview_of_an_unknown_event_is_bad_usage(config_path: Path) -> None:
    result = run_cli("--config", str(config_path), "preview", "bogus")
    assert result.returncode == 2
    assert "bogus" in _one_line(result.stderr)
    assert result.stdout == ""


def _waiting_events(config_path: Path, count: int = 3) -> list[dict[str, Any]]:
    write_config(config_path, {"telemetryInstanceId": INSTANCE, "adminChannel": "C0123ABCD"})
    facts = RuntimeFacts.gather("1.0", RELEASE)
    events = [make_event("heartbeat", INSTANCE, facts, 3600.0 * n) for n in range(count)]
    outbox = outbox_for(config_path)
    for event in events:
        outbox.add(event)
    return events


def test_flush_sends_the_outbox_and_exits_0(server: CaptureServer, config_path: Path) -> None:
    waiting = _waiting_events(config_path)
    result = run_cli(
        "--config", str(config_path), "flush", "--timeout", "10", env=host_environ(server.url)
    )
    assert result.returncode == 0, result.stderr
    assert pending(config_path) == []
    counts = uuid_counts(server)
    assert sorted(counts) == sorted(uuids_of(waiting))
    assert set(counts.values()) == {1}
    assert uuids_of(server.events) == uuids_of(waiting)  # oldest first
    for stored, sent in zip(waiting, server.events, strict=True):
        assert parse_utc(sent["timestamp"]) == parse_utc(stored["timestamp"])


@pytest.mark.parametrize("mode", [REFUSE, HANG])
def test_flush_gives_up_after_its_timeout_and_keeps_the_outbox(
    server: CaptureServer, config_path: Path, mode: str
) -> None:
    waiting = _waiting_events(config_path)
    server.set_mode(mode)
    timeout = 1.0
    started = time.monotonic()
    result = run_cli(
        "--config",
        str(config_path),
        "flush",
        "--timeout",
        f"{timeout:g}",
        env=host_environ(server.url),
        timeout=timeout + 20,
    )
    took = time.monotonic() - started
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert took <= within(timeout), f"flush took {took:.2f} s"
    assert uuids_of(pending(config_path)) == uuids_of(waiting)
    assert server.events == []
    line = _one_line(result.stderr)
    assert str(len(waiting)) in line, line  # says how many still wait


@pytest.mark.parametrize("value", ["abc", "0", "-1"])
def test_flush_with_a_bad_timeout_is_bad_usage(config_path: Path, value: str) -> None:
    waiting = _waiting_events(config_path, 1)
    result = run_cli("--config", str(config_path), "flush", "--timeout", value)
    assert result.returncode == 2
    assert value in _one_line(result.stderr)
    assert uuids_of(pending(config_path)) == uuids_of(waiting)
