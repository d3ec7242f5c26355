"""The events on the wire (docs/CONTRACT.md, "Events on the wire"): exactly these
properties, ids and times; the heartbeat schedule; TELEMETRY_DEBUG; and what is (not)
imported, and where.

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
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from tests.support.capture import CaptureServer, capture_server
from tests.support.cli import cli
from tests.support.events import (
    EVENT_KEYS,
    EVENT_PROPERTIES,
    SDK_PROPERTIES,
    assert_uuid4,
    parse_utc,
    word_in,
)
from tests.support.files import outbox_for, outbox_path, pending, read_config
from tests.support.processes import Process
from tests.support.trackers import (
    exit_normally,
    running_tracker,
    tracker_environ,
    tracker_host,
)
from tests.support.waiting import wait_until


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
    env = tracker_environ(server.url, SLACKONOS_RELEASE="")
    with tracker_host(config_path, env=env, cwd=repo) as host:
        assert server.wait_for_events(1, name="startup", timeout=10)
        report = host.ask("modules", "modules")
    assert server.events_named("startup")[0]["properties"]["release"] == "v3.1.4-test"
    assert report["popen_threads"], "git describe was not run"
    assert report["main_thread"] not in report["popen_threads"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_git_describe_can_be_stopped_by_ctrl_c_and_sigterm(
    server: CaptureServer, config_path: Path, tmp_path: Path
) -> None:
    """git runs from one of our threads, which block SIGINT and SIGTERM; a program keeps
    its parent thread's blocked signals across exec, and would ignore both."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_git = bin_dir / "git"
    fake_git.write_text(
        "#!/bin/sh\necho \"blocked-$(awk '/^SigBlk/ {print $2}' /proc/$$/status)\"\n",
        encoding="utf-8",
    )
    fake_git.chmod(0o755)
    env = tracker_environ(
        server.url, SLACKONOS_RELEASE="", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    )
    with tracker_host(config_path, env=env, cwd=tmp_path):
        assert server.wait_for_events(1, name="startup", timeout=10)
    release = server.events_named("startup")[0]["properties"]["release"]
    assert release.startswith("blocked-"), release
    blocked = int(release.removeprefix("blocked-"), 16)
    for signum in (signal.SIGINT, signal.SIGTERM):
        assert not blocked & (1 << (signum - 1)), (signum.name, release)


def _session(config_path: Path) -> dict[str, Any]:
    """The instance session the outbox file holds (its start and the last slot made)."""
    data = json.loads(outbox_path(config_path).read_text(encoding="utf-8"))
    session = data.get("session", {}).get("1", {})
    assert isinstance(session, dict)
    return session


def _last_slot(config_path: Path) -> int:
    try:
        return int(_session(config_path).get("lastSlot", 0))
    except (OSError, ValueError):
        return 0


def _seconds_after_start(config_path: Path, server: CaptureServer) -> list[float]:
    """Each heartbeat's time after the instance's start, both on the wall clock."""
    started = float(_session(config_path)["startedAt"])
    return [
        parse_utc(beat["timestamp"]).timestamp() - started
        for beat in server.events_named("heartbeat")
    ]


# Both sides read the wall clock, a moment apart: never early means not by more than this.
CLOCK_READS = 0.05


def test_heartbeats_come_on_the_instances_schedule_never_early_one_per_slot(
    server: CaptureServer, config_path: Path
) -> None:
    with running_tracker(config_path, server.url, env={"TELEMETRY_HEARTBEAT_SECONDS": "1"}):
        assert server.wait_for_events(4, name="heartbeat", timeout=30), server.events
        offsets = _seconds_after_start(config_path, server)
        slots = _last_slot(config_path)
    # However late a loaded machine makes it, heartbeat k is never made before slot k.
    for k, offset in enumerate(offsets, start=1):
        assert offset >= k - CLOCK_READS, offsets
    assert len(offsets) <= slots, (offsets, slots)  # at most one per slot


def test_the_schedule_is_kept_from_the_start_not_from_each_wake_up(config_path: Path) -> None:
    """No drift, with the clock in the test's hands: each next slot is counted from the
    instance's start however late a wake-up comes, and slots missed while asleep are
    skipped, not sent in a burst."""
    from slackonos_telemetry.telemetry.events import EventName
    from slackonos_telemetry.telemetry.session import ExitKind, InstanceSession

    now = [1000.0]
    made: list[EventName] = []

    def emit(name: EventName, seconds: float) -> None:
        made.append(name)

    instance = InstanceSession(outbox_for(config_path), clock=lambda: now[0])
    membership = instance.join(now[0], emit)
    start = membership.anchor
    wakes = []
    for at in (1.3, 2.05, 2.9, 5.9, 6.0):  # late, late, early, after a sleep, exact
        now[0] = start + at
        wakes.append(instance.heartbeat_if_due(1.0, emit) - start)
    instance.leave(ExitKind.EXPLICIT, now[0] + 5, emit)
    assert wakes == [2.0, 3.0, 3.0, 6.0, 7.0]
    assert made == [
        EventName.STARTUP,
        EventName.HEARTBEAT,  # slot 1, at 1.3
        EventName.HEARTBEAT,  # slot 2, at 2.05
        EventName.HEARTBEAT,  # slot 5, at 5.9: slots 3 and 4 were slept through
        EventName.HEARTBEAT,  # slot 6, at 6.0
        EventName.SHUTDOWN,
    ]


THREE_DAYS = 3 * 24 * 3600.0


def test_a_step_of_the_wall_clock_moves_neither_uptime_nor_the_schedule(
    server: CaptureServer, config_path: Path
) -> None:
    """A member whose wall clock reads three days ahead (as after a clock step) joins an
    instance, runs it alone, then leaves it to a member with a true clock: uptime and
    the heartbeat slots follow the time that elapsed, whichever member makes them."""
    env = tracker_environ(server.url, TELEMETRY_HEARTBEAT_SECONDS="1")

    def joined(host: Process) -> None:
        assert wait_until(lambda: host.ask("joined", "joined")["joined"], 30), host.describe()

    def two_more_heartbeats() -> None:
        count = len(server.events_named("heartbeat"))
        assert server.wait_for_events(count + 2, name="heartbeat", timeout=30), server.events

    ahead_args = ("--wall-clock-ahead", str(THREE_DAYS))
    with (
        tracker_host(config_path, env=env) as first,
        tracker_host(config_path, *ahead_args, env=env) as ahead,
    ):
        joined(ahead)  # in the background: the first must not leave before
        exit_normally(first)
        two_more_heartbeats()  # made by the member three days ahead, alone
        with tracker_host(config_path, env=env) as last:
            joined(last)
            exit_normally(ahead)
            two_more_heartbeats()  # not three days of silence
            exit_normally(last)
    assert server.wait_for_events(1, name="shutdown", timeout=10), server.events
    heartbeats = [event["properties"] for event in server.events_named("heartbeat")]
    assert {(beat["uptime_hours"], beat["uptime_days"]) for beat in heartbeats} == {(0, 0)}
    assert [event["event"] for event in server.events].count("startup") == 1
    [shutdown] = server.events_named("shutdown")
    assert shutdown["properties"]["total_runtime_hours"] == 0


def test_heartbeats_stop_when_disabled_and_resume_when_enabled(
    server: CaptureServer, config_path: Path
) -> None:
    with running_tracker(config_path, server.url, env={"TELEMETRY_HEARTBEAT_SECONDS": "1"}):
        assert server.wait_for_events(1, name="heartbeat", timeout=30)
        cli(config_path, "disable")
        disabled_at = datetime.now(timezone.utc)
        # The tracker wakes at each slot while disabled: two of them is the exposure.
        slot = _last_slot(config_path)
        assert wait_until(lambda: _last_slot(config_path) >= slot + 2, 30)
        enabled_at = datetime.now(timezone.utc)
        cli(config_path, "enable")
        before = len(server.events_named("heartbeat"))
        assert server.wait_for_events(before + 2, "heartbeat", 30), "no heartbeat after enable"
        offsets = _seconds_after_start(config_path, server)
        slots = _last_slot(config_path)
    beats = [parse_utc(e["timestamp"]) for e in server.events_named("heartbeat")]
    during = [beat for beat in beats if disabled_at <= beat <= enabled_at]
    assert during == [], "heartbeats made while disabled"
    assert len([beat for beat in beats if beat > enabled_at]) >= 2
    # Resumed on the original schedule: never before a slot of the instance's start.
    assert all(offset >= 1 - CLOCK_READS for offset in offsets), offsets
    assert len(offsets) <= slots


def test_debug_prints_each_payload_as_one_json_line_and_sends_nothing(
    server: CaptureServer, config_path: Path
) -> None:
    env = tracker_environ(server.url, TELEMETRY_DEBUG="1", TELEMETRY_HEARTBEAT_SECONDS="1")
    with tracker_host(config_path, env=env) as host:
        line = host.wait_for_line(lambda text: '"heartbeat"' in text, 10, stream="stderr")
        assert line is not None, host.stderr
        host.signal(signal.SIGTERM)
        assert host.wait_exit(10) == -signal.SIGTERM
        host.stop()
        lines = [text for text in host.lines("stderr") if text.strip()]
    payloads = [json.loads(text) for text in lines]  # every stderr line is one JSON payload
    names = [payload["event"] for payload in payloads]
    assert names[0] == "startup" and names[-1] == "shutdown", names
    assert "heartbeat" in names
    instance_id = read_config(config_path)["telemetryInstanceId"]
    for payload in payloads:
        # The payload as the SDK would send it: its own properties included.
        assert set(payload) == EVENT_KEYS
        assert set(payload["properties"]) == EVENT_PROPERTIES[payload["event"]] | SDK_PROPERTIES
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
    env = tracker_environ(server.url, TELEMETRY_ENABLED="false", TELEMETRY_HEARTBEAT_SECONDS="1")
    with tracker_host(config_path, env=env) as host:
        assert wait_until(lambda: pending(config_path) == [], 10), "outbox not emptied"
        # Exposure: two heartbeat slots pass while disabled (the session counts them).
        assert wait_until(lambda: _last_slot(config_path) >= 2, 30), "no slot passed"
        report = host.ask("modules", "modules")
        assert report["posthog_loaded"] is False, report
        host.send_line("exit")  # a normal exit runs the shutdown hook too
        assert host.wait_exit(10) == 0
        host.stop()
        final = host.messages("final")
    assert final and final[0]["posthog_loaded"] is False, host.stdout
    assert server.requests == []


def test_posthog_is_imported_off_the_main_thread(server: CaptureServer, config_path: Path) -> None:
    with tracker_host(config_path, env=tracker_environ(server.url)) as host:
        assert server.wait_for_events(1, name="startup", timeout=10)
        report = host.ask("modules", "modules")
    assert report["posthog_loaded"] is True
    assert report["posthog_import_threads"], report
    assert report["main_thread"] not in report["posthog_import_threads"], report


def test_posthog_is_imported_off_the_main_thread_by_an_early_shutdown(
    server: CaptureServer, config_path: Path
) -> None:
    # The SDK import is deferred for 30 s, so the shutdown (in the main thread's
    # signal handler) is what needs it first.
    env = tracker_environ(server.url, TELEMETRY_SHUTDOWN_TIMEOUT="10")
    args = ("--import-after", "30", "--own", "exit3")
    with tracker_host(config_path, *args, env=env) as host:
        assert host.ask("modules", "modules")["posthog_loaded"] is False
        host.signal(signal.SIGTERM)
        assert host.wait_exit(15) == 3
        host.stop()
        handler = host.messages("handler")
    assert server.events_named("shutdown"), server.events
    assert handler, host.stdout
    assert handler[0]["posthog_import_threads"], handler
    assert handler[0]["main_thread"] not in handler[0]["posthog_import_threads"], handler
