"""SPEC section 4, the events on the wire: exactly these properties, ids and times;
the heartbeat schedule; TELEMETRY_DEBUG; and what is (not) imported, and where.

Every event here is made by a real Tracker and read back as the PostHog-compatible
capture server received it from the real posthog SDK over loopback.
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from tests.support.capture import CaptureServer, capture_server
from tests.support.trackers import (
    EVENT_KEYS,
    EVENT_PROPERTIES,
    SDK_PROPERTIES,
    assert_uuid4,
    cli,
    host_environ,
    outbox_for,
    parse_utc,
    pending,
    read_config,
    running_host,
    running_tracker,
    word_in,
)
from tests.support.waiting import wait_until

HEARTBEAT_TOLERANCE = 0.35  # seconds: how far heartbeat k may sit from startup + k s


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with capture_server() as running:
        yield running


def _by_name(server: CaptureServer) -> dict[str, dict[str, Any]]:
    return {name: server.events_named(name)[0] for name in EVENT_PROPERTIES}


def _identifying_texts(tmp_path: Path, config_path: Path) -> list[str]:
    texts = [str(tmp_path), str(config_path), str(config_path.parent), os.getcwd()]
    texts += [str(Path.home()), sys.executable, sys.prefix]
    return [text for text in texts if len(text) > 1]


def test_each_event_has_exactly_the_spec_properties_on_the_wire(
    server: CaptureServer, config_path: Path, tmp_path: Path
) -> None:
    made_after = datetime.now(timezone.utc)
    env = {"TELEMETRY_HEARTBEAT_SECONDS": "1", "SLACKONOS_RELEASE": "v7.7.7-test"}
    with running_tracker(config_path, server.url, env=env, app_version="9.8.7-host") as tracker:
        assert server.wait_for_events(1, name="heartbeat", timeout=10), server.events
        assert tracker.shutdown(timeout=5) is True
    made_before = datetime.now(timezone.utc)
    assert server.wait_for_events(1, name="shutdown", timeout=5)

    instance_id = read_config(config_path)["telemetryInstanceId"]
    assert_uuid4(instance_id)
    hostname = socket.gethostname()
    user = getpass.getuser()
    for name, event in _by_name(server).items():
        assert set(event) <= EVENT_KEYS, (name, sorted(event))
        assert event["event"] == name
        properties = event["properties"]
        ours = set(properties) - SDK_PROPERTIES
        assert ours == EVENT_PROPERTIES[name], (name, sorted(properties))
        assert properties["$process_person_profile"] is False
        assert properties["$geoip_disable"] is True
        assert event["distinct_id"] == properties["instance_id"] == instance_id
        assert_uuid4(event["uuid"])
        made_at = parse_utc(event["timestamp"])
        assert made_after <= made_at <= made_before, (name, event["timestamp"])
        assert properties["os_platform"] == sys.platform
        assert properties["os_release"] == platform.release()
        assert properties["python_version"] == platform.python_version()
        assert properties["app_version"] == "9.8.7-host"
        assert properties["release"] == "v7.7.7-test"

        payload = json.dumps(event)
        for text in _identifying_texts(tmp_path, config_path):
            assert text not in payload, (name, text)
        assert not word_in(hostname, payload), (name, hostname)
        assert not word_in(socket.getfqdn(), payload), name
        assert not word_in(user, payload), (name, user)
        assert "127.0.0.1" not in payload

    whole = {"uptime_hours", "uptime_days", "total_runtime_hours", "total_runtime_days"}
    for event in server.events:
        for key in whole & set(event["properties"]):
            assert event["properties"][key] == 0, event  # up for seconds, rounded down
            assert type(event["properties"][key]) is int
    assert len(set(e["uuid"] for e in server.events)) == len(server.events)


def test_uptime_and_runtime_are_whole_numbers_rounded_down() -> None:
    facts = RuntimeFacts.gather("1.0", "r")
    seconds = 3 * 86400 + 5 * 3600 + 3599.9  # 3 days, 5 h 59 min 59.9 s
    heartbeat = make_event("heartbeat", "id", facts, seconds)["properties"]
    shutdown = make_event("shutdown", "id", facts, seconds)["properties"]
    assert (heartbeat["uptime_hours"], heartbeat["uptime_days"]) == (77, 3)
    assert (shutdown["total_runtime_hours"], shutdown["total_runtime_days"]) == (77, 3)


def test_release_defaults_to_unknown_outside_a_git_checkout(
    server: CaptureServer, config_path: Path, tmp_path: Path
) -> None:
    env = {"SLACKONOS_RELEASE": ""}
    with running_tracker(config_path, server.url, env=env):
        assert server.wait_for_events(1, name="startup", timeout=10)
    assert server.events_named("startup")[0]["properties"]["release"] == "unknown"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=20,
    )


def test_release_is_git_describe_found_off_the_main_thread(
    server: CaptureServer, config_path: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "bot"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "first")
    _git(repo, "tag", "v3.1.4-test")
    env = host_environ(server.url, SLACKONOS_RELEASE="")
    with running_host(config_path, env=env, cwd=repo) as host:
        assert server.wait_for_events(1, name="startup", timeout=10)
        report = host.modules()
    assert server.events_named("startup")[0]["properties"]["release"] == "v3.1.4-test"
    assert report["popen_threads"], "git describe was not run"
    assert report["main_thread"] not in report["popen_threads"]


def _heartbeat_offsets(server: CaptureServer) -> list[float]:
    startup = parse_utc(server.events_named("startup")[0]["timestamp"])
    beats = server.events_named("heartbeat")
    return [(parse_utc(beat["timestamp"]) - startup).total_seconds() for beat in beats]


def test_heartbeats_keep_a_schedule_that_does_not_drift(
    server: CaptureServer, config_path: Path
) -> None:
    with running_tracker(config_path, server.url, env={"TELEMETRY_HEARTBEAT_SECONDS": "1"}):
        assert server.wait_for_events(4, name="heartbeat", timeout=12), server.events
    offsets = _heartbeat_offsets(server)[:4]
    for k, offset in enumerate(offsets, start=1):
        assert abs(offset - k) <= HEARTBEAT_TOLERANCE, offsets  # k s after startup, no drift


def test_heartbeats_stop_when_disabled_and_resume_when_enabled(
    server: CaptureServer, config_path: Path
) -> None:
    with running_tracker(config_path, server.url, env={"TELEMETRY_HEARTBEAT_SECONDS": "1"}):
        assert server.wait_for_events(1, name="heartbeat", timeout=10)
        cli(config_path, "disable")
        disabled_at = datetime.now(timezone.utc)
        # The window in which slots 2..3 would fall: nothing may be made in it.
        time.sleep(2.2)
        enabled_at = datetime.now(timezone.utc)
        cli(config_path, "enable")
        assert server.wait_for(
            lambda s: any(parse_utc(e["timestamp"]) > enabled_at for e in s.events), timeout=5
        ), "no heartbeat after `enable`"
        assert server.wait_for_events(len(server.events_named("heartbeat")) + 1, "heartbeat", 5)
    beats = [parse_utc(e["timestamp"]) for e in server.events_named("heartbeat")]
    during = [beat for beat in beats if disabled_at <= beat <= enabled_at]
    assert during == [], "heartbeats made while disabled"
    after = [beat for beat in beats if beat > enabled_at]
    assert len(after) >= 2
    # Resumed on the original schedule: whole seconds after startup.
    for offset in _heartbeat_offsets(server):
        assert abs(offset - round(offset)) <= HEARTBEAT_TOLERANCE, _heartbeat_offsets(server)


def test_debug_prints_each_payload_as_one_json_line_and_sends_nothing(
    server: CaptureServer, config_path: Path
) -> None:
    env = host_environ(server.url, TELEMETRY_DEBUG="1", TELEMETRY_HEARTBEAT_SECONDS="1")
    with running_host(config_path, env=env) as host:
        line = host.wait_for_line(lambda text: '"heartbeat"' in text, 10, stream="stderr")
        assert line is not None, host.stderr
        host.process.send_signal(signal.SIGTERM)
        assert host.wait_exit(10) == -signal.SIGTERM
        host.close()
        lines = [text for text in host.stderr if text.strip()]
    payloads = [json.loads(text) for text in lines]  # every stderr line is one JSON payload
    names = [payload["event"] for payload in payloads]
    assert names[0] == "startup" and names[-1] == "shutdown", names
    assert "heartbeat" in names
    instance_id = read_config(config_path)["telemetryInstanceId"]
    for payload in payloads:
        assert set(payload) == EVENT_KEYS
        assert set(payload["properties"]) == EVENT_PROPERTIES[payload["event"]]
        assert payload["distinct_id"] == instance_id
        assert_uuid4(payload["uuid"])
        parse_utc(payload["timestamp"])
    assert server.requests == []
    assert pending(config_path) == []
    assert outbox_for(config_path).stats().pending == 0


def test_posthog_is_never_imported_while_telemetry_is_disabled(
    server: CaptureServer, config_path: Path
) -> None:
    # Events left from an earlier run: a disabled tracker must drop them, not send them.
    facts = RuntimeFacts.gather("1.0", "r")
    outbox_for(config_path).add(make_event("startup", "0" * 8, facts))
    env = host_environ(server.url, TELEMETRY_ENABLED="false", TELEMETRY_HEARTBEAT_SECONDS="1")
    with running_host(config_path, env=env) as host:
        assert wait_until(lambda: pending(config_path) == [], 10), "outbox not emptied"
        time.sleep(1.5)  # exposure: two heartbeat slots pass while disabled
        report = host.modules()
        assert report["posthog_loaded"] is False, report
        host.send("exit")  # a normal exit runs the shutdown hook too
        assert host.wait_exit(10) == 0
        host.close()
        final = host.messages("final")
    assert final and final[0]["posthog_loaded"] is False, host.stdout
    assert server.requests == []


def test_posthog_is_imported_off_the_main_thread(server: CaptureServer, config_path: Path) -> None:
    with running_host(config_path, env=host_environ(server.url)) as host:
        assert server.wait_for_events(1, name="startup", timeout=10)
        report = host.modules()
    assert report["posthog_loaded"] is True
    assert report["posthog_import_threads"], report
    assert report["main_thread"] not in report["posthog_import_threads"], report


def test_posthog_is_imported_off_the_main_thread_by_an_early_shutdown(
    server: CaptureServer, config_path: Path
) -> None:
    # The SDK import is deferred for 30 s, so the shutdown (in the main thread's
    # signal handler) is what needs it first.
    env = host_environ(server.url, TELEMETRY_SHUTDOWN_TIMEOUT="10")
    args = ("--import-after", "30", "--own", "exit3")
    with running_host(config_path, *args, env=env) as host:
        assert host.modules()["posthog_loaded"] is False
        host.process.send_signal(signal.SIGTERM)
        assert host.wait_exit(15) == 3
        host.close()
        handler = host.messages("handler")
    assert server.events_named("shutdown"), server.events
    assert handler, host.stdout
    assert handler[0]["posthog_import_threads"], handler
    assert handler[0]["main_thread"] not in handler[0]["posthog_import_threads"], handler
