"""`preview` and `flush` (docs/CONTRACT.md, "CLI"; the Slack preview, "Slack commands"): the
exact JSON handed to the SDK, and sending the outbox now with a bounded wait. The CLI runs
as `python -m slackonos_telemetry`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from posthog.version import VERSION as POSTHOG_VERSION

from slackonos_telemetry._version import __version__
from slackonos_telemetry.telemetry.events import EventName, RuntimeFacts, make_event
from tests.support.bots import base_config, code_block, open_testbed
from tests.support.capture import (
    HANG,
    REFUSE,
    CaptureServer,
    capture_server,
)
from tests.support.cli import run_cli
from tests.support.environment import REPO
from tests.support.events import (
    EVENT_KEYS,
    EVENT_PROPERTIES,
    SDK_PROPERTIES,
    assert_uuid4,
    own_properties,
    parse_utc,
    uuid_counts,
    uuids_of,
)
from tests.support.files import outbox_for, pending, write_config
from tests.support.processes import GENEROUS_SHUTDOWN, WAIT
from tests.support.trackers import running_tracker, tracker_environ, tracker_host
from tests.support.waiting import within

RELEASE = "v-preview-test"
INSTANCE = "33333333-3333-4333-8333-333333333333"
# The instance, version and release of a host bot whose run the preview reports.
HOST_INSTANCE = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
HOST_VERSION = "7.7.7-host"
HOST_RELEASE = "host-release-2024.06"


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


# -- a preview that is exact: what the bot last ran with, the SDK's properties included
# (docs/CONTRACT.md, "CLI" and "Slack commands") ---------------------------------------------


def _cli_preview(config_path: Path, name: str, cwd: Path) -> tuple[dict[str, Any], str]:
    result = run_cli("--config", str(config_path), "preview", name, cwd=cwd)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data, result.stderr


def test_preview_before_any_run_says_it_uses_this_packages_version(
    config_path: Path, tmp_path: Path
) -> None:
    event, said = _cli_preview(config_path, "heartbeat", tmp_path)
    assert event["properties"]["app_version"] == __version__
    assert "app_version: this package's version" in said, said
    assert "release: " in said, said


def test_cli_preview_uses_what_the_bot_last_ran_with_and_is_what_arrived(
    config_path: Path,
) -> None:
    write_config(config_path, {"telemetryInstanceId": HOST_INSTANCE})
    with capture_server() as capture:
        env = tracker_environ(
            capture.url,
            SLACKONOS_RELEASE=HOST_RELEASE,
            TELEMETRY_SHUTDOWN_TIMEOUT=GENEROUS_SHUTDOWN,
        )
        with tracker_host(config_path, "--app-version", HOST_VERSION, env=env) as host:
            assert capture.wait_for_events(1, "startup", timeout=WAIT), host.stderr
            host.send_line("exit")
            assert host.wait_exit(30) == 0, host.stderr
        assert capture.wait_for_events(1, "shutdown", timeout=WAIT)
        received = {event["event"]: event for event in capture.events}

    # Run where `git describe` gives another label, without SLACKONOS_RELEASE: the
    # preview must still say what the bot sent, and where each value came from.
    for name in ("startup", "shutdown"):
        preview, said = _cli_preview(config_path, name, REPO)
        assert preview["properties"]["app_version"] == HOST_VERSION
        assert preview["properties"]["release"] == HOST_RELEASE
        assert "app_version: what the bot last ran with" in said, said
        assert "release: what the bot last ran with" in said, said
        # Exactly what arrived, the SDK's own properties ($lib, $os, ...) included.
        assert preview["event"] == received[name]["event"]
        assert preview["distinct_id"] == received[name]["distinct_id"]
        assert preview["properties"] == received[name]["properties"], name
        assert preview["properties"]["$lib_version"] == POSTHOG_VERSION
    # Kept beside the outbox, not in the user's config file.
    assert HOST_VERSION not in config_path.read_text(encoding="utf-8")


def test_slack_preview_is_the_heartbeat_that_arrives(
    monkeypatch: pytest.MonkeyPatch, config_path: Path
) -> None:
    monkeypatch.setenv("TELEMETRY_HEARTBEAT_SECONDS", "1")
    with open_testbed(monkeypatch, config_path) as bed:
        bed.write_config(base_config())
        bot = bed.start(app_version="4.5.6-slack", release="slack-release")
        assert bed.capture.wait_for_events(1, "heartbeat", timeout=WAIT), bed.capture.events
        text = str(bot.answer("telemetry preview").params["text"])
        received = bed.capture.events_named("heartbeat")[0]

    assert "exactly" in text and "SDK's own properties included" in text, text
    preview = json.loads(code_block(text))
    assert preview["properties"]["app_version"] == "4.5.6-slack"
    assert preview["properties"]["release"] == "slack-release"
    assert preview["distinct_id"] == received["distinct_id"]
    # The uptime is whole hours: the same 0 in the preview and in the heartbeat.
    assert preview["properties"] == received["properties"]
    assert preview["properties"]["$lib_version"] == POSTHOG_VERSION


# -- flush ---------------------------------------------------------------------------------------


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
        "--config", str(config_path), "flush", "--timeout", "10", env=tracker_environ(server.url)
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
        env=tracker_environ(server.url),
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


def test_flush_with_debug_on_and_events_waiting_keeps_them_and_exits_1(config_path: Path) -> None:
    write_config(config_path, {"telemetryInstanceId": HOST_INSTANCE})
    facts = RuntimeFacts.gather("1.0", "r1")
    outbox_for(config_path).add(make_event(EventName.STARTUP, HOST_INSTANCE, facts, 0.0))

    result = run_cli("--config", str(config_path), "flush", env={"TELEMETRY_DEBUG": "1"})

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "TELEMETRY_DEBUG" in result.stderr and "1 event(s) kept" in result.stderr
    assert len(pending(config_path)) == 1
