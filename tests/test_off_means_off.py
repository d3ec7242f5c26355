"""Off means off (docs/CONTRACT.md, "Off means off"): no event made before an
opt-out leaves after the opt-out answered, every event is checked when it is sent,
only a canonical UUID4 is ever an instance ID, no password in a host URL is shown,
and an empty config file is an opt-out that cannot be read.

Real processes (a bot, the CLI), the real posthog SDK over loopback to the capture
server, real TinyDB files in temp dirs.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from tests.support.bots import Testbed, base_config, open_testbed
from tests.support.capture import ERROR_500, CaptureServer, capture_server
from tests.support.cli import run_cli, status_json
from tests.support.events import (
    EVENT_KEYS,
    EVENT_PROPERTIES,
    SDK_PROPERTIES,
    assert_uuid4,
    parse_utc,
    uuids_of,
)
from tests.support.files import outbox_for, pending, read_config, session, write_config
from tests.support.trackers import running_tracker, tracker_environ, tracker_host
from tests.support.waiting import wait_until

SECRET = "s3cr3tPassw0rd"


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with capture_server() as running:
        yield running


def _joined(config_path: Path) -> bool:
    """Whether a tracker joined the instance (its session is in the outbox file)."""
    return "instance" in session(config_path)


def _queue(config_path: Path, instance_id: str, count: int) -> list[dict[str, Any]]:
    """Events waiting in the outbox, as a bot that could not send them left them."""
    facts = RuntimeFacts.gather("1.0", "queued")
    events = [make_event("heartbeat", instance_id, facts, 3600.0 * n) for n in range(count)]
    outbox = outbox_for(config_path)
    for event in events:
        outbox.add(event)
    return [dict(event) for event in events]


# -- the opt-out race ------------------------------------------------------------------

RACE_BOTS = 3
ROUNDS_PER_BOT = 4  # 12 opt-outs in all, each landing at another moment of the send cycle
# Where, after sends were seen under way, the opt-out starts: spread over one retry period.
ROUND_OFFSETS = (0.0, 0.04, 0.09, 0.15)
# For a bot's first opt-out: right after start, while its tracker imports the SDK.
FIRST_OFFSETS = (0.0, 0.025, 0.05, 0.075, 0.1)


@dataclass(frozen=True)
class OptOut:
    """One `disable` or `reset-id`, and when it ran (monotonic and wall clock)."""

    command: str
    started: float
    answered: float
    answered_wall: datetime
    retired_id: str
    output: str

    def forbids(self, event: dict[str, Any]) -> bool:
        """Whether ``event`` may not start on the wire once this command has answered."""
        if self.command == "reset-id":
            properties = event.get("properties") or {}
            return self.retired_id in (event.get("distinct_id"), properties.get("instance_id"))
        return parse_utc(event["timestamp"]) < self.answered_wall

    @property
    def says_on_the_wire(self) -> bool:
        return "on the wire" in self.output


def _opt_out(config_path: Path, command: str) -> OptOut:
    retired = str(read_config(config_path)["telemetryInstanceId"])
    started = time.monotonic()
    result = run_cli("--config", str(config_path), command)
    answered = time.monotonic()
    answered_wall = datetime.now(timezone.utc)
    assert result.returncode == 0, (command, result.stdout, result.stderr)
    return OptOut(command, started, answered, answered_wall, retired, result.stdout)


def _sends_under_way(config_path: Path, server: CaptureServer) -> None:
    """Telemetry on, fresh events waiting, and a request carrying them seen: the bot's
    tracker is trying (and, the server answering 500, retrying) to send them."""
    if read_config(config_path).get("telemetryEnabled") is False:
        assert run_cli("--config", str(config_path), "enable").returncode == 0
    instance_id = str(read_config(config_path)["telemetryInstanceId"])
    fresh = set(uuids_of(_queue(config_path, instance_id, 2)))
    assert server.wait_for(
        lambda s: any(fresh & set(uuids_of(r.events)) for r in s.requests), timeout=10
    ), "the bot never tried to send the fresh events"


def test_no_request_carrying_an_older_event_starts_after_the_opt_out_answered(
    server: CaptureServer, tmp_path: Path
) -> None:
    # 500 to everything: the tracker retries every 0.05-0.3 s, so requests carrying
    # the waiting events are on their way all the time, before and during each opt-out.
    server.set_mode(ERROR_500)
    env = tracker_environ(server.url, TELEMETRY_HEARTBEAT_SECONDS="1")
    opt_outs: list[OptOut] = []
    for bot in range(RACE_BOTS):
        config_path = tmp_path / f"bot{bot}" / "config.json"
        instance_id = str(uuid.uuid4())
        write_config(config_path, {"gongLimit": 3, "telemetryInstanceId": instance_id})
        _queue(config_path, instance_id, 3)
        with tracker_host(config_path, env=env) as host:
            for round_number in range(ROUNDS_PER_BOT):
                if round_number == 0:
                    delay = FIRST_OFFSETS[bot % len(FIRST_OFFSETS)]
                else:
                    _sends_under_way(config_path, server)
                    delay = ROUND_OFFSETS[(bot + round_number) % len(ROUND_OFFSETS)]
                time.sleep(delay)  # where in the send cycle the opt-out lands
                command = "disable" if round_number % 2 == 0 else "reset-id"
                opt_outs.append(_opt_out(config_path, command))
            assert host.poll() is None, host.stderr

    requests = server.requests
    broken = []
    for opt_out in opt_outs:
        late = [
            record
            for record in requests
            if record.received_at > opt_out.answered and any(map(opt_out.forbids, record.events))
        ]
        # A request already on the wire may finish, and then the answer says so.
        if len(late) > (1 if opt_out.says_on_the_wire else 0):
            broken.append((opt_out.command, opt_out.output, [r.received_at for r in late]))
    assert not broken, f"{len(broken)} of {len(opt_outs)} opt-outs were outrun: {broken}"

    # The race was real: requests carrying the doomed events came while opt-outs ran.
    raced = [
        opt_out
        for opt_out in opt_outs
        if any(
            opt_out.started <= record.received_at <= opt_out.answered
            and any(map(opt_out.forbids, record.events))
            for record in requests
        )
    ]
    assert raced, "no request was under way around any opt-out: the test proved nothing"


# -- every event is checked when it is sent --------------------------------------------


def _odd_entries(instance_id: str, old_id: str) -> dict[str, dict[str, Any]]:
    """Outbox entries as an older version, a hand edit or another ID left them."""
    facts = RuntimeFacts.gather("1.0", "old")
    extra: dict[str, Any] = dict(make_event("heartbeat", instance_id, facts, 7200.0))
    extra["properties"].update(
        hostname=socket.gethostname(), user="alice", channel="C0SECRET", path="/home/alice"
    )
    extra.update({"ip": "10.1.2.3", "$set": {"email": "alice@example.com"}})
    mixed: dict[str, Any] = dict(make_event("startup", instance_id, facts))
    mixed["properties"]["instance_id"] = old_id
    return {
        "extra": extra,
        "old-distinct-id": dict(make_event("heartbeat", old_id, facts, 3600.0)),
        "old-instance-property": mixed,
        "plain": dict(make_event("shutdown", instance_id, facts, 60.0)),
    }


def _assert_spec_event(event: dict[str, Any], instance_id: str) -> None:
    assert set(event) <= EVENT_KEYS, sorted(event)
    properties = event["properties"]
    assert set(properties) - SDK_PROPERTIES == EVENT_PROPERTIES[event["event"]], sorted(properties)
    assert set(properties) - EVENT_PROPERTIES[event["event"]] <= SDK_PROPERTIES
    assert event["distinct_id"] == properties["instance_id"] == instance_id
    assert properties["$process_person_profile"] is False


POSTHOG_ENVIRONMENT = {
    "POSTHOG_RELEASE_ID": "rel-from-the-environment",
    "POSTHOG_CAPTURE_COMPRESSION": "gzip",
    "POSTHOG_PROJECT_API_KEY": "phc_someone_elses_project",
}


def test_flush_sends_only_the_spec_properties_whatever_the_outbox_and_environment_hold(
    server: CaptureServer, config_path: Path
) -> None:
    instance_id, old_id = str(uuid.uuid4()), str(uuid.uuid4())
    write_config(config_path, {"telemetryInstanceId": instance_id})
    entries = _odd_entries(instance_id, old_id)
    outbox = outbox_for(config_path)
    for entry in entries.values():
        outbox.add(entry)  # type: ignore[arg-type]  # as found, unchecked

    result = run_cli(
        "--config",
        str(config_path),
        "flush",
        "--timeout",
        "15",
        env=tracker_environ(server.url, **POSTHOG_ENVIRONMENT),
    )

    assert result.returncode == 0, (result.stdout, result.stderr)
    assert sorted(uuids_of(server.events)) == sorted(
        [entries["extra"]["uuid"], entries["plain"]["uuid"]]
    ), "only entries made with the current ID may be sent"
    for event in server.events:
        _assert_spec_event(event, instance_id)
        payload = json.dumps(event)
        for leaked in ("$release_id", "rel-from-the-environment", "hostname", "alice", "10.1.2.3"):
            assert leaked not in payload, (leaked, event)
    assert pending(config_path) == [], "entries that may never be sent stay in the outbox"


def test_a_running_bot_sends_no_property_the_environment_adds(
    server: CaptureServer, config_path: Path
) -> None:
    env = tracker_environ(server.url, **POSTHOG_ENVIRONMENT)
    with tracker_host(config_path, env=env):
        assert server.wait_for_events(1, name="startup", timeout=15), server.requests
    instance_id = read_config(config_path)["telemetryInstanceId"]
    (startup,) = server.events_named("startup")
    _assert_spec_event(startup, instance_id)
    assert "$release_id" not in startup["properties"]


# -- only a canonical, lower-case UUID4 is an instance ID ------------------------------

NOT_CANONICAL = {
    "uuid1-with-mac": str(uuid.uuid1()),
    "nil": str(uuid.UUID(int=0)),
    "urn": "urn:uuid:" + str(uuid.uuid4()),
    "braced": "{" + str(uuid.uuid4()) + "}",
    "upper-case": str(uuid.uuid4()).upper(),
}


@pytest.mark.parametrize("found", sorted(NOT_CANONICAL))
def test_no_event_in_the_outbox_or_on_the_wire_carries_a_non_canonical_id(
    server: CaptureServer, config_path: Path, found: str
) -> None:
    bad = NOT_CANONICAL[found]
    write_config(config_path, {"gongLimit": 3, "telemetryInstanceId": bad})
    # An older version made these with the ID as it found it.
    facts = RuntimeFacts.gather("1.0", "old")
    stale = [make_event("heartbeat", bad, facts, 3600.0), make_event("startup", bad, facts)]
    for event in stale:
        outbox_for(config_path).add(event)

    with running_tracker(config_path, server.url) as tracker:
        assert server.wait_for_events(1, name="startup", timeout=15), server.requests
        stored = tracker.outbox.pending()
        assert tracker.shutdown(timeout=5)
    assert server.wait_for_events(1, name="shutdown", timeout=5), server.events

    current = read_config(config_path)["telemetryInstanceId"]
    assert_uuid4(current)
    assert current != bad
    for event in [*stored, *pending(config_path)]:
        assert event["distinct_id"] == current, event
    sent = [event for record in server.requests for event in record.events]
    assert {event["event"] for event in sent} == {"startup", "shutdown"}
    for event in sent:
        assert event["distinct_id"] == event["properties"]["instance_id"] == current, event
    assert not set(uuids_of(stale)) & set(uuids_of(sent)), "an event with the old ID was sent"


# -- no user name or password is ever shown --------------------------------------------


def _with_userinfo(url: str) -> str:
    return url.replace("://", f"://telemetry-user:{SECRET}@", 1)


def _assert_no_secret(text: str, where: str) -> None:
    assert SECRET not in text, f"{where} shows the password: {text}"
    assert "telemetry-user" not in text, f"{where} shows the user name: {text}"


HOSTS_WITH_USERINFO: dict[str, Callable[[str], str]] = {
    "http": _with_userinfo,
    "token-only": lambda url: url.replace("://", f"://{SECRET}@", 1),
    "not-http": lambda url: _with_userinfo(url).replace("http://", "ftp://", 1),
    "bad-port": lambda url: _with_userinfo(url).rsplit(":", 1)[0] + ":notaport",
}


@pytest.mark.parametrize("where", ["config", "env"])
@pytest.mark.parametrize("form", sorted(HOSTS_WITH_USERINFO))
def test_status_never_shows_user_info_of_the_host(
    server: CaptureServer, config_path: Path, form: str, where: str
) -> None:
    host = HOSTS_WITH_USERINFO[form](server.url)
    config: dict[str, Any] = {"telemetryInstanceId": str(uuid.uuid4())}
    env: dict[str, str] = {}
    if where == "config":
        config["telemetryHost"] = host
    else:
        env["TELEMETRY_HOST"] = host
    write_config(config_path, config)

    text = run_cli("--config", str(config_path), "status", env=env)
    report = status_json(config_path, env)

    assert text.returncode == 0, text.stderr
    _assert_no_secret(text.stdout + text.stderr, "status")
    _assert_no_secret(json.dumps(report), "status --json")
    assert "127.0.0.1" in report["host"], report["host"]  # which host is still clear
    if form in ("not-http", "bad-port"):
        assert report["enabled"] is False and report["reason"], report


def test_slack_status_never_shows_user_info_of_the_host(
    monkeypatch: pytest.MonkeyPatch, config_path: Path
) -> None:
    with open_testbed(monkeypatch, config_path) as bed:
        monkeypatch.setenv("TELEMETRY_HOST", _with_userinfo(bed.capture.url))
        bed.write_config(base_config())
        bot = bed.start()
        answer = bot.answer("telemetry status")
    _assert_no_secret(json.dumps(answer.params), "Slack's telemetry status")
    assert "127.0.0.1" in answer.params["text"]


def test_logs_and_flush_never_show_user_info_of_the_host(
    server: CaptureServer, config_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    server.set_mode(ERROR_500)
    host = _with_userinfo(server.url)
    with running_tracker(config_path, server.url, env={"TELEMETRY_HOST": host}):
        assert server.wait_for(lambda s: len(s.requests) >= 2, timeout=15), server.requests
    assert any(r.levelno >= logging.WARNING for r in caplog.records), "nothing was logged"
    for record in caplog.records:
        _assert_no_secret(record.getMessage() + (record.exc_text or ""), f"log {record.name}")
    _assert_no_secret(caplog.text, "the log")

    flush = run_cli(
        "--config", str(config_path), "flush", "--timeout", "2", env={"TELEMETRY_HOST": host}
    )
    assert flush.returncode == 1, (flush.stdout, flush.stderr)  # 500: still waiting
    _assert_no_secret(flush.stdout + flush.stderr, "flush")


# -- an empty config file may be an opt-out that cannot be read ------------------------

EMPTY_FILES = {"zero-bytes": "", "whitespace": "  \n\t\r\n  "}


@pytest.mark.parametrize("content", sorted(EMPTY_FILES))
def test_an_empty_config_is_a_config_error_and_nothing_is_sent(
    server: CaptureServer, config_path: Path, content: str
) -> None:
    config_path.parent.mkdir(parents=True)
    config_path.write_bytes(EMPTY_FILES[content].encode())
    waiting = _queue(config_path, str(uuid.uuid4()), 2)

    report = status_json(config_path)
    flushed = run_cli(
        "--config", str(config_path), "flush", "--timeout", "10", env=tracker_environ(server.url)
    )

    assert report["enabled"] is False
    assert report["source"] == "config-error"
    assert str(config_path) in report["reason"]
    assert re.search(r"line \d+, column \d+", report["reason"]), report["reason"]
    # Withheld, not an opt-out: nothing is sent, and nothing is discarded either.
    assert flushed.returncode == 1, flushed.stdout
    assert "config-error" in flushed.stderr and str(len(waiting)) in flushed.stderr
    assert server.requests == [], "an empty config let events out"
    assert uuids_of(pending(config_path)) == uuids_of(waiting)
    assert config_path.read_bytes() == EMPTY_FILES[content].encode(), "reading wrote"


def test_a_bot_on_an_empty_config_sends_nothing_and_makes_no_id(
    server: CaptureServer, config_path: Path
) -> None:
    config_path.parent.mkdir(parents=True)
    config_path.write_bytes(b"")
    waiting = _queue(config_path, str(uuid.uuid4()), 2)
    with tracker_host(config_path, env=tracker_environ(server.url)) as host:
        # Withheld: the tracker neither sends nor empties the outbox. Once it joined the
        # instance (its first turn), it had looked at the file and decided.
        assert wait_until(lambda: _joined(config_path), 10), host.stderr
        assert host.ask("ping", "pong")["pid"] == host.pid
    assert server.requests == []
    assert uuids_of(pending(config_path)) == uuids_of(waiting), "events were discarded"
    assert config_path.read_bytes() == b"", "the bot wrote an ID into an unreadable config"


@pytest.mark.parametrize("command", ["enable", "disable"])
@pytest.mark.parametrize("content", sorted(EMPTY_FILES))
def test_a_write_may_replace_an_empty_config(config_path: Path, content: str, command: str) -> None:
    config_path.parent.mkdir(parents=True)
    config_path.write_text(EMPTY_FILES[content], encoding="utf-8")

    result = run_cli("--config", str(config_path), command)

    assert result.returncode == 0, result.stderr
    assert read_config(config_path) == {"telemetryEnabled": command == "enable"}
    report = status_json(config_path)
    assert (report["enabled"], report["source"]) == (command == "enable", "config")


def test_slack_setconfig_replaces_an_empty_config(
    monkeypatch: pytest.MonkeyPatch, config_path: Path
) -> None:
    bed: Testbed
    with open_testbed(monkeypatch, config_path) as bed:
        bed.write_config("")
        bot = bed.start()
        before = bot.answer("telemetry status").params["text"]
        saved = bot.answer("setconfig telemetryEnabled false").params["text"]
        assert "config-error" in before, before
        assert str(config_path) in saved, saved
        assert bed.config() == {"telemetryEnabled": False}


# -- a folder others may write is named in status ----------------------------------------------


@pytest.mark.parametrize(("mode", "warned"), [(0o777, True), (0o775, True), (0o755, False)])
def test_status_warns_when_others_may_write_the_config_folder(
    config_path: Path, mode: int, warned: bool
) -> None:
    # Anyone who may write there may hold its lock files, and so block every opt-out.
    write_config(config_path, {"gongLimit": 3})
    config_path.parent.chmod(mode)

    result = run_cli("--config", str(config_path), "status")

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("Warning:")]
    assert bool(warnings) is warned, result.stdout
    if warned:
        assert str(config_path.parent) in warnings[0], warnings
