"""Writes to the config file through the real paths (docs/CONTRACT.md, "The config
file"): what the CLI, Slack's setconfig and a running bot write changes only the lines
it must, checked as a user checks it in git; a read-only config still works (or says
why not); and a host rewriting the file in place loses no event.

`tests/test_config_format.py` tests the text function; here every write goes through
a real process or a real Bolt app on real files, and the real posthog SDK sends to the
capture server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.config.jsonfile import dumps
from tests.support.bots import open_testbed
from tests.support.capture import CaptureServer, capture_server
from tests.support.events import uuid_counts
from tests.support.files import diff, lines, outbox_path
from tests.support.trackers import tracker_environ
from tests.support.users import read_only_config
from tests.support.waiting import wait_until, within
from tests.test_state_folder import EXIT_SECONDS, cli, logged_host, stop, writable_by_nobody

# SlackONOS's own example config: github.com/htilly/SlackONOS, config/config.json.example
EXAMPLE = (Path(__file__).parent / "data" / "slackonos-config.json.example").read_bytes()
EXAMPLE_TEXT = EXAMPLE.decode("utf-8")
ON = "telemetryEnabled"
ID = "telemetryInstanceId"
NOTICE = "telemetryNoticeShown"

# The example, and files as people write them otherwise.
LOOKS: dict[str, str] = {
    "slackonos-example": EXAMPLE_TEXT,
    # Tabs, and text no ASCII-only writer would give back the same.
    "tabs-non-ascii": re.sub(r"(?m)^    ", "\t", EXAMPLE_TEXT).replace(
        '\t"logLevel"',
        '\t"botName" : "Mötley Crüe — 東京 🎸",\n\t"greeting": "caf\\u00e9",\n\t"logLevel"',
    ),
    "crlf": EXAMPLE_TEXT.replace("\n", "\r\n"),
    "no-final-newline": EXAMPLE_TEXT.rstrip("\n"),
    "minified": json.dumps(json.loads(EXAMPLE_TEXT), separators=(",", ":")),
    "empty-object": "{}\n",
}


# -- the file as a user sees it in git -----------------------------------------------------


def ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :]


def read(text: str) -> dict[str, Any]:
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def assert_keys_added(old: str, new: str, keys: Mapping[str, Any]) -> None:
    """``new`` is ``old`` with ``keys`` added (in any order) and not one other byte changed:
    in a file of one member a line, one line per key plus the comma after the last old
    value; in a one-line file, text inserted on that line."""
    assert read(new) == {**read(old), **keys}
    if len(lines(old)) == 1:
        # One line, and it only grows: the old text is the new one's start and end.
        assert len(lines(new)) == 1, new
        pairs = zip(old, new[: len(old)], strict=True)
        start = next((at for at, (was, now) in enumerate(pairs) if was != now), len(old))
        assert new[:start] + new[start + len(new) - len(old) :] == old, (old, new)
        return
    removed, added = diff(old, new)
    assert len(removed) == 1 and len(added) == len(keys) + 1, (removed, added)
    (last,) = removed
    eol = ending(last)
    assert added[0] == last[: len(last) - len(eol)] + "," + eol, (last, added[0])
    indent = re.match(r"[ \t]*", last)
    assert indent is not None
    members = added[1:]
    for position, line in enumerate(members):
        comma = "," if position < len(members) - 1 else ""
        key = next((key for key in keys if line.startswith(indent.group() + json.dumps(key))), "")
        assert key, (line, keys)
        member = rf"{re.escape(indent.group() + json.dumps(key))} ?: ?{re.escape(dumps(keys[key]))}"
        assert re.fullmatch(member + re.escape(comma + eol), line), (line, indent.group(), eol)


def assert_value_changed(old: str, new: str, key: str) -> None:
    """``new`` is ``old`` with the value of ``key`` replaced where it stands: one line."""
    before, after = read(old)[key], read(new)[key]
    assert before != after
    assert read(new) == {**read(old), key: after}
    assert len(lines(new)) == len(lines(old))
    removed, added = diff(old, new)
    assert len(removed) == len(added) == 1, (removed, added)
    member = re.compile(re.escape(json.dumps(key)) + r"(\s*:\s*)" + re.escape(dumps(before)))
    expected = member.sub(lambda m: json.dumps(key) + m.group(1) + dumps(after), old)
    assert new == expected, (old, new)


def text_of(path: Path) -> str:
    # Bytes, not read_text(): that would turn \r\n into \n.
    return path.read_bytes().decode("utf-8")


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with capture_server() as running:
        yield running


# -- the CLI, Slack and a running bot keep the file's look ---------------------------------


@pytest.mark.parametrize("look", sorted(LOOKS))
def test_cli_writes_change_only_their_lines(config_path: Path, look: str) -> None:
    write_text(config_path, LOOKS[look])
    steps: list[tuple[str, Callable[[str, str], None]]] = [
        ("disable", lambda old, new: assert_keys_added(old, new, {ON: False})),
        ("enable", lambda old, new: assert_value_changed(old, new, ON)),
        ("reset-id", lambda old, new: assert_keys_added(old, new, {ID: read(new)[ID]})),
    ]
    for command, check in steps:
        old = text_of(config_path)
        result = cli(config_path, command)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        check(old, text_of(config_path))


@pytest.mark.parametrize("look", sorted(LOOKS))
def test_slack_setconfig_changes_only_its_line(
    monkeypatch: pytest.MonkeyPatch, config_path: Path, look: str
) -> None:
    original = LOOKS[look]
    with open_testbed(monkeypatch, config_path) as bed:
        write_text(config_path, original)
        bot = bed.start()
        # The bot's own first writes (its instance ID, the notice shown), each one line.
        assert wait_until(lambda: ID in read(text_of(config_path)), 10), text_of(config_path)
        bot.answer("telemetry status")
        started = text_of(config_path)
        made = {key: value for key, value in read(started).items() if key not in read(original)}
        assert set(made) <= {ID, NOTICE} and ID in made, made
        assert_keys_added(original, started, made)

        answer = bot.answer("setconfig telemetryEnabled false").params["text"]
        assert "saved" in answer, answer
        assert_keys_added(started, text_of(config_path), {ON: False})
        set_again = text_of(config_path)
        bot.answer("setconfig telemetryEnabled true")
        assert_value_changed(set_again, text_of(config_path), ON)


@pytest.mark.parametrize("look", sorted(LOOKS))
def test_a_running_bot_adds_its_instance_id_as_one_line(
    server: CaptureServer, config_path: Path, look: str
) -> None:
    write_text(config_path, LOOKS[look])
    with logged_host(config_path, tracker_environ(server.url)) as host:
        assert server.wait_for_events(1, name="startup", timeout=15), host.stderr
        stop(host)
    written = text_of(config_path)
    assert_keys_added(LOOKS[look], written, {ID: read(written)[ID]})
    assert {event["distinct_id"] for event in server.events} == {read(written)[ID]}


# -- read-only configs -------------------------------------------------------------------


def test_a_read_only_config_sends_under_one_id_kept_in_the_state_folder(
    server: CaptureServer,
) -> None:
    with read_only_config(EXAMPLE_TEXT) as config, writable_by_nobody() as state_home:
        env = tracker_environ(server.url, XDG_STATE_HOME=str(state_home))
        for starts in (1, 2):
            with logged_host(config.path, env, as_nobody=True) as host:
                assert server.wait_for_events(starts, name="startup", timeout=15), host.stderr
                stop(host)

        ids = {event["distinct_id"] for event in server.events}
        assert len(ids) == 1, ids
        (instance_id,) = ids
        assert uuid.UUID(instance_id).version == 4
        assert config.path.read_bytes() == EXAMPLE
        assert os.listdir(config.path.parent) == ["config.json"]
        # One folder per config file: its folder's name and a hash of its path.
        (folder,) = (state_home / "slackonos-telemetry").iterdir()
        assert re.fullmatch(r"config-[0-9a-f]{12}", folder.name), folder.name
        kept = json.loads((folder / "config.json.outbox").read_text(encoding="utf-8"))
        assert kept["meta"]["1"]["instanceId"] == instance_id
        status = config.run_cli("--config", str(config.path), "status", "--json", env=env)
        report = json.loads(status.stdout)
        assert report["state_dir"] == str(folder), report
        assert "cannot be written" in report["state_reason"], report
        assert report["instance_id"] == instance_id and report["instance_id_kept_in"] == "state"


def test_a_read_only_config_with_nowhere_to_write_sends_nothing_and_says_the_fix_once(
    server: CaptureServer,
) -> None:
    with read_only_config(EXAMPLE_TEXT) as config:
        nowhere = config.path.parent / "state"  # in the read-only folder
        env = tracker_environ(server.url, XDG_STATE_HOME=str(nowhere))
        with logged_host(config.path, env, as_nobody=True) as host:
            said = host.wait_for_line(
                lambda line: "TELEMETRY_STATE_DIR" in line, 15, stream="stderr"
            )
            assert said is not None, host.stderr
            assert host.ask("ping", "pong")["pid"] == host.pid
            stop(host)

        assert server.requests == []
        fix = [line for line in host.lines("stderr") if "TELEMETRY_STATE_DIR" in line]
        assert len(fix) == 1 and "telemetryInstanceId" in fix[0], host.stderr
        assert config.path.read_bytes() == EXAMPLE
        assert os.listdir(config.path.parent) == ["config.json"]


def test_an_opt_out_in_a_read_only_config_still_wins(server: CaptureServer) -> None:
    content = EXAMPLE_TEXT.replace('"logLevel"', '"telemetryEnabled": false,\n    "logLevel"')
    with read_only_config(content) as config, writable_by_nobody() as state_home:
        env = tracker_environ(server.url, XDG_STATE_HOME=str(state_home))
        with logged_host(config.path, env, as_nobody=True) as host:
            # It joined its instance (the session is in the outbox): it had its chance.
            assert wait_until(lambda: _session(state_home) != {}, 15), host.stderr
            stop(host)

        assert server.requests == []
        for outbox in (state_home / "slackonos-telemetry").glob("*/config.json.outbox"):
            kept = json.loads(outbox.read_text(encoding="utf-8"))
            assert kept.get("events", {}) == {}, kept
            assert "instanceId" not in kept.get("meta", {}).get("1", {}), kept
        assert config.path.read_bytes() == content.encode("utf-8")


def _session(state_home: Path) -> dict[str, Any]:
    for outbox in (state_home / "slackonos-telemetry").glob("*/config.json.outbox"):
        found = json.loads(outbox.read_text(encoding="utf-8")).get("session", {}).get("1", {})
        return found if isinstance(found, dict) else {}
    return {}


def test_disable_on_a_read_only_config_says_it_cannot_be_saved() -> None:
    with read_only_config(EXAMPLE_TEXT) as config, writable_by_nobody() as state_home:
        env = {"XDG_STATE_HOME": str(state_home)}
        differs = config.run_cli("--config", str(config.path), "disable", env=env)

        assert differs.returncode == 1, (differs.stdout, differs.stderr)
        (line,) = differs.stderr.splitlines()
        assert "cannot save" in line and str(config.path) in line, line
        assert "saved" not in differs.stdout
        assert config.path.read_bytes() == EXAMPLE
    off = EXAMPLE_TEXT.replace('"logLevel"', '"telemetryEnabled": false,\n    "logLevel"')
    with read_only_config(off) as config, writable_by_nobody() as state_home:
        same = config.run_cli(
            "--config", str(config.path), "disable", env={"XDG_STATE_HOME": str(state_home)}
        )
        assert same.returncode == 0, same.stderr
        assert "already false" in same.stdout, same.stdout


# -- a host rewriting the config in place --------------------------------------------------


class InPlaceRewriter:
    """A host that rewrites the config in place, as many programs do: truncate, a short
    pause, write. Runs until stopped (at most ``limit`` seconds)."""

    def __init__(self, path: Path, pause: float = 0.01, between: float = 0.01) -> None:
        self.path = path
        self.data = path.read_bytes()
        self.pause = pause
        self.between = between
        self.rewrites = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="in-place-rewriter", daemon=True)

    def _run(self, limit: float = 60.0) -> None:
        until = time.monotonic() + limit
        while not self._stop.is_set() and time.monotonic() < until:
            fd = os.open(self.path, os.O_WRONLY | os.O_TRUNC)
            try:
                time.sleep(self.pause)
                os.write(fd, self.data)
            finally:
                os.close(fd)
            self.rewrites += 1
            self._stop.wait(self.between)

    def __enter__(self) -> InPlaceRewriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()


SLOTS = 5


def _last_slot(config_path: Path) -> int:
    try:
        data = json.loads(outbox_path(config_path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return 0
    slot = data.get("session", {}).get("1", {}).get("lastSlot", 0)
    return slot if isinstance(slot, int) else 0


def test_a_config_rewritten_in_place_loses_no_event(
    server: CaptureServer, config_path: Path
) -> None:
    """A config caught mid-rewrite withholds, and discards nothing: the startup and every
    heartbeat made arrive, once each. (Old: 3 of 9 runs lost the startup and ~7
    heartbeats.)"""
    text = EXAMPLE_TEXT.replace('"logLevel"', f'"{ID}": "{uuid.uuid4()}",\n    "logLevel"')
    write_text(config_path, text)
    env = tracker_environ(
        server.url, TELEMETRY_HEARTBEAT_SECONDS="1", TELEMETRY_SHUTDOWN_TIMEOUT="10"
    )
    changes: list[int] = []  # each value of the session's lastSlot seen, in order

    def slot_reached() -> bool:
        slot = _last_slot(config_path)
        if not changes or changes[-1] != slot:
            changes.append(slot)
        return slot >= SLOTS

    with InPlaceRewriter(config_path) as rewriter, logged_host(config_path, env) as host:
        assert wait_until(slot_reached, 30, interval=0.01), (changes, host.stderr)
        rewriter.stop()
        stop(host)

    assert rewriter.rewrites >= 20, rewriter.rewrites
    assert config_path.read_bytes() == text.encode("utf-8")
    names = [event["event"] for event in server.events]
    assert names.count("startup") == 1, names
    assert names.count("shutdown") == 1, names
    # Each change of lastSlot seen made one heartbeat (a slot the bot slept through is
    # skipped, never sent late); a change this poll missed made one too.
    made = len([slot for slot in changes if slot > 0])
    assert made <= names.count("heartbeat") <= _last_slot(config_path), (changes, names)
    assert max(uuid_counts(server).values()) == 1
    assert "Traceback" not in host.stderr, host.stderr


def test_a_config_caught_mid_rewrite_discards_nothing_and_disable_empties_at_once(
    server: CaptureServer, config_path: Path
) -> None:
    """A config error (the file caught mid-rewrite) withholds and discards nothing; an
    explicit opt-out still empties the outbox at once."""
    write_text(config_path, EXAMPLE_TEXT)
    server.set_mode("500")  # events wait in the outbox
    env = tracker_environ(server.url)
    with logged_host(config_path, env) as host:
        assert wait_until(lambda: _waiting(config_path) != [], 15), host.stderr
        with InPlaceRewriter(config_path) as rewriter:
            assert wait_until(lambda: rewriter.rewrites >= 10, 10)
            assert _waiting(config_path) != [], "a config caught mid-rewrite discarded events"
            rewriter.stop()
        result = cli(config_path, "disable")
        assert result.returncode == 0, result.stderr
        # At once: when it answers (the bot, seeing the opt-out, may have been first).
        assert _waiting(config_path) == [], "disable left events waiting"
        host.send_line("exit")
        assert host.wait_exit(within(EXIT_SECONDS)) == 0, host.stderr
    assert server.events == []


def _waiting(config_path: Path) -> list[str]:
    try:
        data = json.loads(outbox_path(config_path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return []
    return [str(entry.get("uuid")) for entry in data.get("events", {}).values()]
