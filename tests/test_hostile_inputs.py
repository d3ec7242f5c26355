"""Hostile inputs survived (docs/CONTRACT.md, "The config file", "Delivery", "CLI"): whatever
the config file, the file system, the capture endpoint or the process layout, nothing
crashes, nothing escapes as a traceback, an opt-out always works, and the deadline
is kept.

Real CLI and bot processes, the real posthog SDK over loopback to the capture server,
the real Bolt app over signed HTTP, real files (symlinks, owners, permissions).
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from tests.support.bots import Testbed, base_config, open_testbed
from tests.support.capture import (
    ACCEPT,
    ERROR_500,
    HANG,
    MOVED_PATH,
    REDIRECT_301,
    REDIRECT_302,
    REDIRECT_307,
    TIMEOUT_408,
    CaptureServer,
    capture_server,
)
from tests.support.cli import one_error_line, run_cli
from tests.support.environment import PYTHON, clean_environ
from tests.support.events import parse_utc, uuids_of
from tests.support.files import (
    Snapshot,
    last_slot,
    make_state_folder,
    outbox_for,
    outbox_path,
    pending,
    read_config,
    tree,
    write_config,
)
from tests.support.processes import started
from tests.support.trackers import ready, tracker_environ, tracker_host
from tests.support.users import NOBODY, owned_by_nobody, read_only_config, readable_by_nobody
from tests.support.waiting import wait_until, within

POSITION = re.compile(r"line \d+, column \d+")


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with capture_server() as running:
        yield running


@pytest.fixture
def bed(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> Iterator[Testbed]:
    with open_testbed(monkeypatch, config_path) as testbed:
        yield testbed


def _cli(config_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli("--config", str(config_path), *args, env=env or None)


def _queue(config_path: Path, count: int) -> list[str]:
    """Events waiting in the outbox, made with the config's instance ID."""
    instance_id = str(read_config(config_path)["telemetryInstanceId"])
    facts = RuntimeFacts.gather("1.0", "queued")
    events = [make_event("heartbeat", instance_id, facts, 3600.0 * n) for n in range(count)]
    for event in events:
        outbox_for(config_path).add(event)
    return uuids_of(events)


# -- lone surrogates in another program's values ---------------------------------------

# As Node writes a cut emoji: JSON escapes of lone surrogates, in a value, a key, an array.
SURROGATE_TEXT = (
    "{\n"
    '  "nowPlaying": "Song \\ud83c",\n'
    '  "lastDj\\udc00": ["\\udfff", {"deep": "x\\ud800y"}],\n'
    '  "emoji": "\\ud83c\\udfb8",\n'
    '  "gongLimit": 3,\n'
    f'  "telemetryInstanceId": "{uuid.uuid4()}"\n'
    "}\n"
)


def _foreign(text: str) -> dict[str, Any]:
    data = json.loads(text)
    return {key: value for key, value in data.items() if not key.startswith("telemetry")}


@pytest.mark.parametrize("command", ["disable", "enable", "reset-id"])
def test_a_lone_surrogate_never_stops_a_cli_write(config_path: Path, command: str) -> None:
    config_path.parent.mkdir(parents=True)
    config_path.write_text(SURROGATE_TEXT, encoding="ascii")

    result = _cli(config_path, command)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    written = config_path.read_text(encoding="utf-8")
    assert _foreign(written) == _foreign(SURROGATE_TEXT), "another program's values changed"
    assert "\\ud83c" in written and "\\udc00" in written  # still escapes any reader can take
    if command != "reset-id":
        assert json.loads(written)["telemetryEnabled"] is (command == "enable")


def test_a_lone_surrogate_never_stops_slack_setconfig(bed: Testbed) -> None:
    bed.write_config(SURROGATE_TEXT)

    answer = bed.start().answer("setconfig telemetryEnabled false").params["text"]

    assert str(bed.config_path) in answer, answer
    written = bed.config_path.read_text(encoding="utf-8")
    assert json.loads(written)["telemetryEnabled"] is False
    assert _foreign(written) == _foreign(SURROGATE_TEXT)


def test_a_foreign_number_beyond_float_range_is_kept_or_refused(config_path: Path) -> None:
    original = '{"maxVolume": 1e400, "gongLimit": 3}\n'
    config_path.parent.mkdir(parents=True)
    config_path.write_text(original, encoding="utf-8")

    result = _cli(config_path, "disable")

    written = config_path.read_text(encoding="utf-8")
    if result.returncode == 0:  # written: the value must be kept, in JSON any reader takes
        assert "Infinity" not in written, written
        assert json.loads(written)["maxVolume"] == json.loads(original)["maxVolume"]
    else:  # refused as a config-error: nothing changed
        one_error_line(result)
        assert written == original


@pytest.mark.parametrize("key", ["telemetryApiKey", "telemetryHost"])
def test_status_shows_a_config_whose_own_values_hold_a_lone_surrogate(
    config_path: Path, key: str
) -> None:
    value = {
        "telemetryApiKey": "phc_abcdefghij\\ud83c",
        "telemetryHost": "https://example.com/eu\\ud83c",
    }
    config_path.parent.mkdir(parents=True)
    config_path.write_text(f'{{"gongLimit": 3, "{key}": "{value[key]}"}}', encoding="ascii")

    result = _cli(config_path, "status")

    assert result.returncode == 0, result.stderr
    assert "Telemetry:" in result.stdout


# -- nesting too deep, a number too long -----------------------------------------------

UNREADABLE = {
    "nested-100000": '{"gongLimit": 3,\n "queue": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
    "number-5000-digits": '{"gongLimit": 3,\n "counter": ' + "7" * 5000 + "}\n",
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_an_unreadable_config_is_a_config_error_in_one_cli_line(
    config_path: Path, kind: str
) -> None:
    config_path.parent.mkdir(parents=True)
    config_path.write_text(UNREADABLE[kind], encoding="utf-8")
    original = config_path.read_bytes()

    status = _cli(config_path, "status", "--json")
    report = json.loads(status.stdout)
    assert (report["enabled"], report["source"]) == (False, "config-error")
    assert POSITION.search(report["reason"]) and str(config_path) in report["reason"], report
    for command in ("disable", "enable", "reset-id"):
        result = _cli(config_path, command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        line = one_error_line(result)
        assert str(config_path) in line and POSITION.search(line), line
    assert config_path.read_bytes() == original


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_an_unreadable_config_gets_slack_answers_not_http_500(bed: Testbed, kind: str) -> None:
    bed.write_config(UNREADABLE[kind])
    original = bed.config_bytes()
    bot = bed.start()

    status = bot.answer("telemetry status").params["text"]  # asserts HTTP 200
    saved = bot.answer("setconfig telemetryEnabled false").params["text"]

    assert "config-error" in status and POSITION.search(status), status
    assert str(bed.config_path) in saved and POSITION.search(saved), saved
    assert bed.config_bytes() == original


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_the_tracker_survives_an_unreadable_config_and_recovers_when_fixed(
    server: CaptureServer, config_path: Path, kind: str
) -> None:
    server.set_mode(ERROR_500)  # events wait, so the tracker looks at the file often
    write_config(config_path, {"gongLimit": 3, "telemetryInstanceId": str(uuid.uuid4())})
    good = config_path.read_text(encoding="utf-8")
    env = tracker_environ(server.url, TELEMETRY_HEARTBEAT_SECONDS="1")
    with tracker_host(config_path, env=env) as host:
        assert wait_until(lambda: pending(config_path) != [], 10), host.stderr
        config_path.write_text(UNREADABLE[kind], encoding="utf-8")
        # Withheld while it cannot be read (it may hold an opt-out, or a mere typo): the
        # tracker, still running, sends nothing and discards nothing. Two heartbeat slots
        # passed means it looked at the file at least twice meanwhile.
        slot = last_slot(config_path)
        assert wait_until(lambda: last_slot(config_path) >= slot + 2, 15), host.stderr
        kept = uuids_of(pending(config_path))
        server.set_mode(ACCEPT)
        slot = last_slot(config_path)
        assert wait_until(lambda: last_slot(config_path) >= slot + 2, 15), host.stderr
        assert server.events == [], "an event left while the config could not be read"
        assert uuids_of(pending(config_path)) == kept, "waiting events were discarded"
        fixed_at = datetime.now(timezone.utc)
        config_path.write_text(good, encoding="utf-8")
        # Fixed: what waited goes out, and the tracker makes new events again.
        assert server.wait_for(lambda s: set(kept) <= set(uuids_of(s.events)), timeout=10)
        assert server.wait_for(
            lambda s: any(parse_utc(e["timestamp"]) > fixed_at for e in s.events), timeout=10
        ), f"no event after the fix: the tracker is gone\n{host.stderr}"
        assert host.ask("ping", "pong")["pid"] == host.pid
    assert "Traceback" not in host.stderr, host.stderr


# The outbox file is input too: whatever it holds, an opt-out works and nothing blocks the
# events behind it (docs/CONTRACT.md, "Delivery": checked when sent, unusable ones dropped).


def _outbox_with(config_path: Path, documents: dict[str, Any]) -> list[str]:
    """An outbox file written by hand (or by another program), plus two good events;
    returns the good events' uuids."""
    instance_id = str(uuid.uuid4())
    write_config(config_path, {"gongLimit": 3, "telemetryInstanceId": instance_id})
    facts = RuntimeFacts.gather("1.0", "x")
    good = [make_event("heartbeat", instance_id, facts, 3600.0 * n) for n in (1, 2)]
    events = {**documents, "101": dict(good[0]), "102": dict(good[1])}
    for document in documents.values():
        document.update({"distinct_id": instance_id, "timestamp": good[0]["timestamp"]})
    make_state_folder(config_path)
    outbox_for(config_path).path.write_text(json.dumps({"events": events}), encoding="utf-8")
    return uuids_of(good)


def _copy(documents: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(documents))


def _odd_document(**changes: Any) -> dict[str, Any]:
    event = dict(make_event("startup", str(uuid.uuid4()), RuntimeFacts.gather("1.0", "x")))
    event.update(changes)
    return event


ODD_OUTBOXES: dict[str, dict[str, Any]] = {
    "uuid-a-list": {"1": _odd_document(uuid=["not", "a", "string"])},
    "uuid-an-object": {"1": _odd_document(uuid={"hex": "abc"})},
    "key-not-a-number": {"first": _odd_document()},
}


@pytest.mark.parametrize("odd", sorted(ODD_OUTBOXES))
def test_an_odd_outbox_entry_never_blocks_the_others(
    server: CaptureServer, config_path: Path, odd: str
) -> None:
    good = _outbox_with(config_path, _copy(ODD_OUTBOXES[odd]))

    result = _cli(config_path, "flush", "--timeout", "10", **tracker_environ(server.url))

    assert result.returncode == 0, (result.stdout, result.stderr)
    assert pending(config_path) == []
    if odd != "key-not-a-number":  # a file TinyDB cannot read may be set aside whole
        assert sorted(uuids_of(server.events)) == sorted(good)


def test_disable_answers_and_empties_an_outbox_with_an_odd_key(config_path: Path) -> None:
    _outbox_with(config_path, _copy(ODD_OUTBOXES["key-not-a-number"]))

    result = _cli(config_path, "disable")

    assert result.returncode == 0, (result.stdout, result.stderr)
    assert read_config(config_path)["telemetryEnabled"] is False
    assert pending(config_path) == []


# -- the config file is a symlink ------------------------------------------------------


@pytest.fixture
def linked_config(tmp_path: Path) -> tuple[Path, Path]:
    """(the link the bot is given, the real file in another folder)."""
    target = tmp_path / "shared" / "config.json"
    write_config(target, {"gongLimit": 3, "adminChannel": "C0123ABCD"})
    link = tmp_path / "bot" / "config.json"
    link.parent.mkdir()
    link.symlink_to(os.path.relpath(target, link.parent))
    return link, target


@pytest.mark.parametrize("command", ["disable", "enable", "reset-id"])
def test_a_cli_write_goes_to_the_target_and_keeps_the_link(
    linked_config: tuple[Path, Path], command: str
) -> None:
    link, target = linked_config

    assert _cli(link, command).returncode == 0

    assert link.is_symlink() and link.resolve() == target.resolve()
    written = read_config(target)
    assert written["gongLimit"] == 3 and written["adminChannel"] == "C0123ABCD"
    assert set(os.listdir(link.parent)) == {"config.json"}, "a file appeared beside the link"


def test_a_write_through_a_dangling_link_creates_the_target(tmp_path: Path) -> None:
    target = tmp_path / "shared" / "config.json"
    link = tmp_path / "bot" / "config.json"
    link.parent.mkdir()
    link.symlink_to(target)

    assert _cli(link, "disable").returncode == 0

    assert link.is_symlink()
    assert read_config(target) == {"telemetryEnabled": False}


def test_an_opt_out_in_the_real_file_is_honoured_by_a_bot_given_the_link(
    server: CaptureServer, linked_config: tuple[Path, Path]
) -> None:
    link, target = linked_config
    server.set_mode(ERROR_500)
    with tracker_host(link, env=tracker_environ(server.url)) as host:
        # The bot's first write (its instance ID) goes through the link.
        assert wait_until(lambda: pending(target) != [], 10), host.stderr
        assert link.is_symlink()
        assert "telemetryInstanceId" in read_config(target)
        config = read_config(target)
        write_config(target, {**config, "telemetryEnabled": False})  # a hand edit
        assert wait_until(lambda: pending(target) == [], 10), "the opt-out was not seen"
    report = json.loads(_cli(link, "status", "--json").stdout)
    assert (report["enabled"], report["source"]) == (False, "config")


# -- a rewrite keeps the owner and mode ------------------------------------------------


@pytest.mark.parametrize("command", ["disable", "reset-id"])
def test_root_keeps_the_owner_and_mode_of_a_users_config(command: str) -> None:
    with owned_by_nobody() as folder:
        config_path = folder / "config.json"
        write_config(config_path, {"gongLimit": 3, "telemetryInstanceId": str(uuid.uuid4())})
        os.chown(config_path, NOBODY, NOBODY)
        config_path.chmod(0o640)
        _queue(config_path, 1)  # an outbox, so that it is written too
        for made in folder.iterdir():
            os.chown(made, NOBODY, NOBODY)

        result = _cli(config_path, command)

        assert result.returncode == 0, result.stderr
        status = config_path.stat()
        assert (status.st_uid, status.st_gid) == (NOBODY, NOBODY)
        assert stat.S_IMODE(status.st_mode) == 0o640
        assert readable_by_nobody(config_path), "the bot's user cannot read its config"
        if command == "disable":
            assert read_config(config_path)["telemetryEnabled"] is False
        not_theirs = [p.name for p in folder.iterdir() if p.stat().st_uid != NOBODY]
        assert not_theirs == [], f"root now owns {not_theirs} in the bot's folder"


# -- a redirect is not acceptance; 408 is retried -------------------------------------


@pytest.mark.parametrize("mode", [REDIRECT_301, REDIRECT_302, REDIRECT_307])
def test_a_redirect_is_not_acceptance(server: CaptureServer, config_path: Path, mode: str) -> None:
    write_config(config_path, {"telemetryInstanceId": str(uuid.uuid4())})
    waiting = _queue(config_path, 2)
    server.set_mode(mode)

    result = _cli(config_path, "flush", "--timeout", "1.5", **tracker_environ(server.url))

    assert result.returncode == 1, (result.stdout, result.stderr)
    one_error_line(result)
    assert uuids_of(pending(config_path)) == waiting, "a redirect counted as delivered"
    assert server.requests and all(r.path != MOVED_PATH for r in server.requests), [
        (r.method, r.path) for r in server.requests
    ]


def test_a_408_keeps_the_event_and_is_retried(server: CaptureServer, config_path: Path) -> None:
    write_config(config_path, {"telemetryInstanceId": str(uuid.uuid4())})
    waiting = _queue(config_path, 1)
    server.set_mode(TIMEOUT_408)

    first = _cli(config_path, "flush", "--timeout", "1.5", **tracker_environ(server.url))

    assert first.returncode == 1, (first.stdout, first.stderr)
    assert uuids_of(pending(config_path)) == waiting, "408 dropped the event"
    assert any(r.status == 408 and r.events for r in server.requests), server.requests
    server.set_mode(ACCEPT)
    second = _cli(config_path, "flush", "--timeout", "10", **tracker_environ(server.url))
    assert second.returncode == 0, second.stderr
    assert uuids_of(server.events) == waiting
    assert pending(config_path) == []


def test_a_running_bot_retries_a_408_until_accepted(
    server: CaptureServer, config_path: Path
) -> None:
    server.set_mode(TIMEOUT_408)
    with tracker_host(config_path, env=tracker_environ(server.url)) as host:
        assert server.wait_for(lambda s: len(s.requests) >= 2, timeout=15), host.stderr
        server.set_mode(ACCEPT)
        assert server.wait_for_events(1, name="startup", timeout=15), host.stderr
    retried = {uuid for r in server.requests if r.status == 408 for uuid in uuids_of(r.events)}
    assert uuids_of(server.events_named("startup"))[0] in retried


# -- a key the plugin owns, given twice -----------------------------------------------

TWICE = {
    "false-then-true": '{\n  "telemetryEnabled": false,\n  "gongLimit": 3,\n'
    '  "telemetryEnabled": true\n}\n',
    "true-then-false": '{\n  "telemetryEnabled": true,\n  "telemetryEnabled": false\n}\n',
    "instance-id": f'{{\n  "telemetryInstanceId": "{uuid.uuid4()}",\n'
    f'  "telemetryInstanceId": "{uuid.uuid4()}"\n}}\n',
}


@pytest.mark.parametrize("kind", sorted(TWICE))
def test_an_owned_key_given_twice_is_a_config_error(
    server: CaptureServer, config_path: Path, kind: str
) -> None:
    config_path.parent.mkdir(parents=True)
    config_path.write_text(TWICE[kind], encoding="utf-8")
    original = config_path.read_bytes()
    outbox_for(config_path).add(
        make_event("startup", str(uuid.uuid4()), RuntimeFacts.gather("1.0", "x"))
    )

    report = json.loads(_cli(config_path, "status", "--json").stdout)
    enable = _cli(config_path, "enable")
    flush = _cli(config_path, "flush", "--timeout", "5", **tracker_environ(server.url))

    assert (report["enabled"], report["source"]) == (False, "config-error"), report
    assert "twice" in report["reason"] and POSITION.search(report["reason"]), report["reason"]
    assert enable.returncode == 2
    assert "twice" in one_error_line(enable)
    # Withheld, not an opt-out: nothing is sent, and the event waits.
    assert flush.returncode == 1 and "config-error" in one_error_line(flush), flush.stderr
    assert server.requests == []
    assert len(pending(config_path)) == 1
    assert config_path.read_bytes() == original


def test_a_foreign_key_given_twice_is_the_hosts_business(config_path: Path) -> None:
    config_path.parent.mkdir(parents=True)
    config_path.write_text('{"gongLimit": 1, "gongLimit": 2, "telemetryEnabled": false}')

    report = json.loads(_cli(config_path, "status", "--json").stdout)

    assert (report["enabled"], report["source"]) == (False, "config")


def test_slack_setconfig_on_an_owned_key_given_twice_answers_the_error(bed: Testbed) -> None:
    bed.write_config(TWICE["false-then-true"])
    original = bed.config_bytes()

    answer = bed.start().answer("setconfig telemetryEnabled false").params["text"]

    assert "twice" in answer and POSITION.search(answer), answer
    assert bed.config_bytes() == original


# -- reading never writes -------------------------------------------------------------


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["preview"]])
def test_reading_a_config_that_is_not_there_creates_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    config_path = tmp_path / "no" / "such" / "dir" / "c.json"

    result = _cli(config_path, *args)

    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "no").exists(), tree(tmp_path / "no")


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["preview", "startup"]])
def test_reading_an_existing_config_writes_nothing(config_path: Path, args: list[str]) -> None:
    write_config(config_path, {"gongLimit": 3})  # enabled, and no instance ID yet
    before = tree(config_path.parent)

    result = _cli(config_path, *args)

    assert result.returncode == 0, result.stderr
    assert tree(config_path.parent) == before


def _not_the_trackers(found: dict[str, Snapshot]) -> dict[str, Snapshot]:
    # The bot's tracker keeps its outbox (and its locks) on a thread of its own, at
    # its own pace: that is not what answering a command wrote.
    return {
        name: data
        for name, data in found.items()
        if not name.lstrip(".").startswith("telemetry-outbox")  # its temp files too
    }


@pytest.mark.parametrize("command", ["telemetry status", "telemetry preview"])
def test_slack_status_and_preview_write_nothing(
    bed: Testbed, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    # Off in the environment, so the bot itself makes no ID; the config has none.
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    bed.write_config({"gongLimit": 3, "telemetryNoticeShown": True})
    bot = bed.start()
    before = _not_the_trackers(tree(bed.config_path.parent))

    answer = bot.answer(command)
    bot.settle()

    assert answer.params["text"]
    assert _not_the_trackers(tree(bed.config_path.parent)) == before
    assert sorted(before) == [".", "config.json"], before
    assert "telemetryInstanceId" not in bed.config()


# -- a closed pipe, a folder that cannot be written -----------------------------------


def test_status_json_into_head_c1_through_a_shell_pipe(config_path: Path) -> None:
    write_config(config_path, {"gongLimit": 3})
    script = (
        f'"{sys.executable}" -m slackonos_telemetry --config "{config_path}" status --json '
        '| head -c1; code=${PIPESTATUS[0]}; echo; echo "status=$code"'
    )
    result = subprocess.run(
        ["bash", "-c", script],
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    first, code = result.stdout.splitlines()
    assert first == "{"
    # The JSON fits the pipe's buffer, so the write may be done before head closes
    # its end: then all went well. If not, one line and exit 1.
    if code == "status=0":
        assert result.stderr == ""
    else:
        assert code == "status=1", result
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("args", [["status", "--json"], ["status"], ["preview"]])
def test_output_into_a_closed_pipe_is_one_line_and_exit_1(
    config_path: Path, args: list[str]
) -> None:
    write_config(config_path, {"gongLimit": 3})
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        result = subprocess.run(
            [sys.executable, "-m", "slackonos_telemetry", "--config", str(config_path), *args],
            env=clean_environ(),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize("command", ["flush", "disable"])
def test_flush_and_disable_in_a_folder_that_cannot_be_written(
    server: CaptureServer, command: str
) -> None:
    instance_id = str(uuid.uuid4())
    content = json.dumps({"gongLimit": 3, "telemetryInstanceId": instance_id}) + "\n"
    with read_only_config(content) as config:
        outbox = outbox_path(config.path)
        facts = RuntimeFacts.gather("1.0", "x")
        outbox_for(config.path).add(make_event("startup", instance_id, facts))
        # The bot's state, readable by all, writable by no one but root.
        outbox.chmod(0o644)
        outbox.parent.chmod(0o755 if os.geteuid() == 0 else 0o555)
        before = (config.path.read_bytes(), outbox.read_bytes())

        try:
            result = config.run_cli(
                "--config", str(config.path), command, env=tracker_environ(server.url)
            )
        finally:
            outbox.parent.chmod(0o700)

        assert result.returncode == 1, (result.stdout, result.stderr)
        line = one_error_line(result).lower()
        # Run as another user, the state folder is not its own; run as its owner, the
        # folder is read-only: either way, one line that says why.
        assert "permission denied" in line or "belongs to user" in line, line
        assert (config.path.read_bytes(), outbox.read_bytes()) == before


# -- two apps in one process, one deadline --------------------------------------------

SHUTDOWN_TIMEOUT = 3.0

TWO_APPS = """
import sys, time
from slack_bolt import App
from slack_sdk import WebClient
from slackonos_telemetry import register

plugins = []
for path in sys.argv[1:]:
    # No Web API call is made (the notice was shown); any would go to a closed port.
    client = WebClient(token="xoxb-test", base_url="http://127.0.0.1:9/api/")
    app = App(client=client, signing_secret="secret", token_verification_enabled=False)
    plugins.append(register(app, config_path=path))
for plugin in plugins:
    assert plugin.start_now(20), "telemetry never started"
print("ready", flush=True)
time.sleep(60)
"""


def _events_named(config_path: Path, name: str) -> list[dict[str, Any]]:
    return [event for event in pending(config_path) if event.get("event") == name]


def test_two_apps_in_one_process_stop_within_one_deadline_together(
    server: CaptureServer, tmp_path: Path
) -> None:
    server.set_mode(HANG)
    paths = [tmp_path / name / "config.json" for name in ("first", "second")]
    for path in paths:
        write_config(path, base_config(telemetryInstanceId=str(uuid.uuid4())))
    env = tracker_environ(server.url, TELEMETRY_SHUTDOWN_TIMEOUT=f"{SHUTDOWN_TIMEOUT:g}")
    with started([PYTHON, "-c", TWO_APPS, *map(str, paths)], env=env) as host:
        ready(host)
        assert wait_until(lambda: all(_events_named(p, "startup") for p in paths), 15)
        assert server.wait_for_request(15), "no send under way"  # and it hangs
        signalled_at = datetime.now(timezone.utc)
        started_at = time.monotonic()
        host.signal(signal.SIGTERM)
        code = host.wait_exit(within(SHUTDOWN_TIMEOUT) + 10)
        took = time.monotonic() - started_at
    assert code == -signal.SIGTERM, (code, host.stderr)
    assert took <= within(SHUTDOWN_TIMEOUT), f"SIGTERM took {took:.2f} s"
    made = []
    for path in paths:
        (shutdown,) = _events_named(path, "shutdown")  # each instance's, kept for later
        made.append(parse_utc(shutdown["timestamp"]))
    assert all(when >= signalled_at for when in made), made
    # In turn, the second would have waited for the first's whole deadline.
    assert abs(made[0] - made[1]) < timedelta(seconds=SHUTDOWN_TIMEOUT), made
