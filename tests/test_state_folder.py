"""The state folder, the plugin's own files (docs/CONTRACT.md, "The config file"): one
folder named as ours, regular files we made, every field read from them checked, and
an older version's outbox taken over once.

Real files in temp dirs, real bot processes (tests/support/hosts/tracker_host.py, with
logging on so that what it logs can be counted), the real posthog SDK against the
capture server on 127.0.0.1, the real Bolt app over signed HTTP.

A bot may run in this process (Testbed): nothing here opens a lock file of ours, since
closing any descriptor of one would drop that bot's locks (only names and lstat).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from tests.support.bots import base_config, open_testbed
from tests.support.capture import CaptureServer, capture_server
from tests.support.cli import run_cli
from tests.support.cli import status_json as cli_status_json
from tests.support.events import uuid_counts, uuids_of
from tests.support.files import (
    Snapshot,
    make_state_folder,
    outbox_data,
    outbox_for,
    outbox_path,
    outbox_uuids,
    state_folder,
    tree,
    write_config,
)
from tests.support.processes import Process
from tests.support.trackers import EXIT_SECONDS, ready, tracker_environ, tracker_host
from tests.support.trackers import exit_normally as stop
from tests.support.users import AS_ROOT, NOBODY, read_only_config, writable_by_nobody
from tests.support.waiting import wait_until, within

# As root, the owner of the bot's folder: neither root nor the owner of any target, so
# that a chown through a planted link would show.
FOLDER_OWNER = 4242
INSTANCE = "3b0c5b8e-9a1f-4d6e-8c2b-7f4e1a9d0c35"
OLD_OUTBOX = "telemetry-outbox.json"
CAPACITY = 1000  # docs/CONTRACT.md, Delivery
STATUS_SECONDS = 10.0  # a status must answer well within this (it reads two small files)


# -- helpers ---------------------------------------------------------------------------


@contextlib.contextmanager
def logged_host(
    config_path: Path,
    env: Mapping[str, str],
    *,
    as_nobody: bool = False,
    file_size_limit: int | None = None,
    wait_ready: bool = True,
) -> Iterator[Process]:
    """A bot (tracker_host.py) whose warnings go to its stderr, run from the folder above
    the config's; killed and reaped on the way out. ``as_nobody``: run as user nobody
    when this process is root."""
    with tracker_host(
        config_path,
        env=env,
        cwd=config_path.parent.parent,
        wait_ready=wait_ready,
        log=True,
        file_size_limit=file_size_limit,
        as_nobody=as_nobody,
    ) as host:
        yield host


def cli(
    config_path: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A CLI command, bounded: it must answer well within STATUS_SECONDS."""
    return run_cli("--config", str(config_path), *args, env=env, timeout=within(STATUS_SECONDS))


def status_json(config_path: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    return cli_status_json(config_path, env, timeout=within(STATUS_SECONDS))


def events(count: int, instance_id: str = INSTANCE, name: str = "heartbeat") -> list[Any]:
    facts = RuntimeFacts.gather("1.0", "own-files")
    return [make_event(name, instance_id, facts, 3600.0 * n) for n in range(count)]


def warnings_naming(host: Process, text: str) -> list[str]:
    return [line for line in host.lines("stderr") if line.startswith("WARNING") and text in line]


def loop_warnings(host: Process, text: str) -> list[str]:
    """The tracker's warnings about a failure it keeps trying again."""
    return [line for line in warnings_naming(host, text) if "trying again later" in line]


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with capture_server() as running:
        yield running


# -- one folder of ours ------------------------------------------------------------------

ROLES = ("outbox", "outbox.lock", "send.lock", "wire.lock", "members", "members.lock", "lock")


def test_after_a_run_the_config_folder_holds_the_config_and_our_folder(
    server: CaptureServer, config_path: Path
) -> None:
    write_config(config_path, {"gongLimit": 3})  # no ID yet: the bot writes the config too
    with logged_host(config_path, tracker_environ(server.url)) as host:
        assert server.wait_for_events(1, name="startup", timeout=15), host.stderr
        stop(host)

    assert sorted(os.listdir(config_path.parent)) == [".slackonos-telemetry", "config.json"]
    folder = config_path.parent / ".slackonos-telemetry"
    status = os.lstat(folder)
    assert stat.S_ISDIR(status.st_mode) and stat.S_IMODE(status.st_mode) == 0o700
    names = sorted(os.listdir(folder))
    assert all(name.startswith("config.json.") for name in names), names
    assert {name.removeprefix("config.json.") for name in names} >= set(ROLES), names
    for name in names:
        found = os.lstat(folder / name)
        assert stat.S_ISREG(found.st_mode), name
        assert stat.S_IMODE(found.st_mode) == 0o600, (name, oct(found.st_mode))
    report = status_json(config_path)
    assert (report["state_dir"], report["state_reason"]) == (str(folder), "beside the config file")


def test_telemetry_state_dir_holds_every_file_of_ours(
    server: CaptureServer, config_path: Path, tmp_path: Path
) -> None:
    write_config(config_path, base_config(telemetryInstanceId=INSTANCE))
    chosen = tmp_path / "state-here"
    env = tracker_environ(server.url, TELEMETRY_STATE_DIR=str(chosen))
    with logged_host(config_path, env) as host:
        assert server.wait_for_events(1, name="startup", timeout=15), host.stderr
        stop(host)

    assert sorted(os.listdir(config_path.parent)) == ["config.json"]
    names = sorted(os.listdir(chosen))
    # The config's name and a hash of its path: two bots may be given one folder.
    prefixes = {re.sub(r"^(config\.json-[0-9a-f]{12}\.).*", r"\1", name) for name in names}
    assert len(prefixes) == 1, names
    (prefix,) = prefixes
    assert {name.removeprefix(prefix) for name in names} >= set(ROLES) - {"lock"}, names
    text = cli(config_path, "status", env=env).stdout
    assert f"State: {chosen} (TELEMETRY_STATE_DIR is set)" in text.splitlines(), text


def test_a_symlinked_configs_state_is_beside_its_target(
    server: CaptureServer, tmp_path: Path
) -> None:
    target = tmp_path / "shared" / "config.json"
    write_config(target, {"gongLimit": 3})
    link = tmp_path / "bot" / "config.json"
    link.parent.mkdir()
    link.symlink_to(os.path.relpath(target, link.parent))

    with logged_host(link, tracker_environ(server.url)) as host:
        assert server.wait_for_events(1, name="startup", timeout=15), host.stderr
        stop(host)

    assert os.listdir(link.parent) == ["config.json"] and link.is_symlink()
    assert sorted(os.listdir(target.parent)) == [".slackonos-telemetry", "config.json"]
    assert status_json(link)["state_dir"] == str(target.parent / ".slackonos-telemetry")


def test_two_configs_sharing_telemetry_state_dir_are_two_instances(
    server: CaptureServer, tmp_path: Path
) -> None:
    """Two bots, each with its config/config.json, one TELEMETRY_STATE_DIR: two instances,
    each with its startup and its shutdown (one shared outbox would make them one)."""
    configs = [tmp_path / bot / "config" / "config.json" for bot in ("first", "second")]
    ids = [str(uuid.uuid4()) for _ in configs]
    for path, instance_id in zip(configs, ids, strict=True):
        write_config(path, base_config(telemetryInstanceId=instance_id))
    env = tracker_environ(server.url, TELEMETRY_STATE_DIR=str(tmp_path / "state"))

    with logged_host(configs[0], env) as first:
        assert server.wait_for_events(1, name="startup", timeout=15), first.stderr
        with logged_host(configs[1], env) as second:
            found = server.wait_for(lambda s: len(s.events_named("startup")) >= 2, timeout=15)
            assert found, (server.events, second.stderr)
            stop(second)
        stop(first)

    started = {event["distinct_id"] for event in server.events_named("startup")}
    ended = {event["distinct_id"] for event in server.events_named("shutdown")}
    assert started == set(ids) and ended == set(ids), server.events


# -- planted links and FIFOs -------------------------------------------------------------

# Where a file of ours is expected, something else: a symlink to the config file (or,
# for the folder, to a folder of someone else's), or a FIFO.
PLANTED = {
    "outbox-link": ("outbox", "link"),
    "outbox-lock-link": ("outbox.lock", "link"),
    "send-lock-link": ("send.lock", "link"),
    "wire-lock-link": ("wire.lock", "link"),
    "wire-lock-fifo": ("wire.lock", "fifo"),
    "members-lock-link": ("members.lock", "link"),
    "members-link": ("members", "link"),
    "outbox-fifo": ("outbox", "fifo"),
    "outbox-lock-fifo": ("outbox.lock", "fifo"),
    "members-fifo": ("members", "fifo"),
    "state-folder-link": ("", "folder-link"),
}


@dataclass(frozen=True)
class Planted:
    config: Path
    path: Path  # what was planted
    victims: Path  # the folder holding everything a planted link could reach


def watched(planted: Planted) -> dict[str, Snapshot]:
    """What a planted file could lead the plugin to change: the config file, the planted
    file itself and everything in the other folder (a bot's other files may come)."""
    return {
        "config": Snapshot.of(planted.config),
        "planted": Snapshot.of(planted.path),
        **{f"elsewhere/{name}": found for name, found in tree(planted.victims).items()},
    }


def plant(tmp_path: Path, kind: str) -> Planted:
    """A bot's folder with a config (an ID in it: the bot has no reason to write it) and
    ``kind`` planted in its state folder. As root, the folder belongs to another user, as
    a bot's own folder would, and the config to user nobody."""
    role, how = PLANTED[kind]
    folder = tmp_path / "bot"
    config = folder / "config.json"
    write_config(config, base_config(telemetryInstanceId=INSTANCE))
    victims = tmp_path / "elsewhere"
    victims.mkdir()
    (victims / "config.json.outbox").write_text("someone else's\n", encoding="utf-8")
    if AS_ROOT:
        os.chown(folder, FOLDER_OWNER, FOLDER_OWNER)
        os.chown(config, NOBODY, NOBODY)
        for path in (victims, victims / "config.json.outbox"):
            os.chown(path, NOBODY, NOBODY)
    state = state_folder(config)
    if how == "folder-link":
        state.symlink_to(victims)
        return Planted(config, state, victims)
    make_state_folder(config)
    if AS_ROOT:
        os.chown(state, FOLDER_OWNER, FOLDER_OWNER)
    planted = state / f"config.json.{role}"
    if how == "link":
        planted.symlink_to(config)
    else:
        os.mkfifo(planted, 0o600)
    return Planted(config, planted, victims)


# (A FIFO as a lock file: the outbox's lock, the same path as wire.lock's, is tested
# through disable below.)
@pytest.mark.parametrize("kind", sorted(set(PLANTED) - {"wire-lock-fifo", "outbox-lock-fifo"}))
def test_a_planted_link_or_fifo_changes_nothing_and_blocks_nothing(
    server: CaptureServer, tmp_path: Path, kind: str
) -> None:
    planted = plant(tmp_path, kind)
    before = watched(planted)
    env = tracker_environ(server.url, TELEMETRY_SHUTDOWN_TIMEOUT="0.5")

    with logged_host(planted.config, env) as host:
        said = host.wait_for_line(lambda line: str(planted.path) in line, 15, stream="stderr")
        assert said is not None, host.stderr
        # The bot keeps trying (every 0.05-0.3 s) while this looks: still one line.
        status = cli(planted.config, "status", "--json", env=env)
        assert host.ask("ping", "pong")["pid"] == host.pid
        stop(host)

    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    report = json.loads(status.stdout)
    assert report["state_dir"] == str(state_folder(planted.config))
    shown = [report["state_problem"] or "", *report["warnings"]]
    assert sum(str(planted.path) in line for line in shown) == 1, shown  # status says it
    assert len(loop_warnings(host, str(planted.path))) == 1, host.stderr
    # Besides it, at most the shutdown's own line: it could not make its event either.
    assert len(warnings_naming(host, str(planted.path))) <= 2, host.stderr
    assert watched(planted) == before
    assert server.requests == [], "sent although its own files were not usable"


SLACK_PLANTED = ["outbox-fifo", "outbox-link", "members-fifo", "state-folder-link"]


@pytest.mark.parametrize("kind", SLACK_PLANTED)
def test_slack_status_answers_despite_a_planted_file(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    kind: str,
) -> None:
    planted = plant(tmp_path, kind)
    before = watched(planted)
    caplog.set_level(logging.WARNING, logger="slackonos_telemetry")
    with open_testbed(monkeypatch, planted.config) as bed:
        bot = bed.start()
        assert wait_until(lambda: _logged(caplog, str(planted.path)) >= 1, 15), caplog.text
        answers = [bot.answer("telemetry status").params["text"] for _ in range(2)]
        logged = _logged(caplog, str(planted.path))
        assert bed.capture.requests == []
    assert all("Telemetry" in answer for answer in answers), answers
    assert logged == 1, caplog.text
    assert watched(planted) == before


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(
        1
        for record in caplog.records
        if record.levelno >= logging.WARNING and text in record.getMessage()
    )


@pytest.mark.parametrize("how", ["link", "fifo"])
def test_disable_with_a_planted_config_lock_fails_in_one_line(tmp_path: Path, how: str) -> None:
    config = tmp_path / "config.json"
    original = write_config(config, {"gongLimit": 3})
    lock = make_state_folder(config) / "config.json.lock"
    if how == "link":
        lock.symlink_to(config)
    else:
        os.mkfifo(lock, 0o600)
    before = tree(tmp_path)

    result = cli(config, "disable")

    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and str(lock) in lines[0], result.stderr
    assert config.read_bytes() == original
    assert tree(tmp_path) == before
    assert any(str(lock) in warning for warning in status_json(config)["warnings"])


@pytest.mark.parametrize("kind", ["wire-lock-link", "wire-lock-fifo", "send-lock-link"])
def test_disable_empties_the_outbox_despite_a_planted_lock(tmp_path: Path, kind: str) -> None:
    planted = plant(tmp_path, kind)
    outbox = outbox_path(planted.config)
    outbox.write_text(
        json.dumps({"events": {str(n): e for n, e in enumerate(events(3), 1)}}), encoding="utf-8"
    )
    before = watched(planted)

    result = cli(planted.config, "disable")

    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Discarded 3 waiting event(s)" in result.stdout, result.stdout
    assert outbox_data(planted.config, outbox).get("events") == {}
    after = watched(planted)
    assert after.pop("config") != before.pop("config")  # the opt-out, saved
    assert after == before


# -- every field read from our files is checked ------------------------------------------

# What each field holds once reset (or made anew).
FIXED_TYPES: dict[str, type] = {
    "dropped": int,
    "lastDelivery": str,
    "lastSlot": int,
    "startedAt": float,
}
# Each: (the table, or the members record; the field; the wrong value).
WRONG_TYPED = {
    "meta-dropped-a-string": ("meta", "dropped", "several"),
    "meta-dropped-a-list": ("meta", "dropped", [1]),
    "meta-dropped-an-object": ("meta", "dropped", {"count": 1}),
    "meta-dropped-null": ("meta", "dropped", None),
    "meta-last-delivery-a-number": ("meta", "lastDelivery", 5),
    "session-last-slot-a-string": ("session", "lastSlot", "2"),
    "session-started-at-a-list": ("session", "startedAt", [1]),
    "members-not-json": ("members", "", "{not json"),
}


def _wrong_outbox(config_path: Path, variant: str, instance_id: str) -> list[str]:
    """An outbox with a wrong-typed field and two events waiting; their uuids."""
    table, name, value = WRONG_TYPED[variant]
    waiting = events(2, instance_id)
    meta: dict[str, Any] = {"dropped": 0, "lastDelivery": "2026-01-01T00:00:00+00:00"}
    session: dict[str, Any] = {
        "instance": uuid.uuid4().hex,
        "startedAt": 1_700_000_000.0,
        "lastSlot": 0,
        "parents": {},
        "endedAt": 1_700_000_100.0,
    }
    if table == "meta":
        meta[name] = value
    elif table == "session":
        session[name] = value
    folder = make_state_folder(config_path)
    if table == "members":
        (folder / "config.json.members").write_text(str(value), encoding="utf-8")
    data = {
        "events": {str(n): dict(event) for n, event in enumerate(waiting, 1)},
        "meta": {"1": meta},
        "session": {"1": session},
    }
    outbox_path(config_path).write_text(json.dumps(data), encoding="utf-8")
    return uuids_of(waiting)


def _stop_all(hosts: Mapping[str, Process]) -> None:
    for host in hosts.values():
        host.send_line("exit")
    for host in hosts.values():
        assert host.wait_exit(within(EXIT_SECONDS)) == 0, host.describe()


def test_wrong_typed_fields_are_reset_once_and_never_stop_or_repeat_sending(
    server: CaptureServer, tmp_path: Path
) -> None:
    """Each variant on a bot of its own, all side by side (heartbeats take real time): the
    field is reset and said once, heartbeats keep coming, and a restart sends nothing
    that was accepted before. (The old defect: a wrong-typed meta.dropped stopped every
    heartbeat, and accepted events were sent again at every restart.)"""
    variants = sorted(WRONG_TYPED)
    configs = {variant: tmp_path / variant / "config.json" for variant in variants}
    ids = {variant: str(uuid.uuid4()) for variant in variants}
    waiting: dict[str, list[str]] = {}
    for variant in variants:
        write_config(configs[variant], base_config(telemetryInstanceId=ids[variant]))
        waiting[variant] = _wrong_outbox(configs[variant], variant, ids[variant])
    env = tracker_environ(server.url, TELEMETRY_HEARTBEAT_SECONDS="1")

    def sent(variant: str, name: str | None = None) -> list[dict[str, Any]]:
        return [
            event
            for event in server.events
            if event["distinct_id"] == ids[variant] and name in (None, event["event"])
        ]

    def going_on(variant: str) -> bool:
        delivered = set(uuids_of(sent(variant)))
        return len(sent(variant, "heartbeat")) >= 2 and set(waiting[variant]) <= delivered

    with contextlib.ExitStack() as running:
        first = {v: running.enter_context(logged_host(configs[v], env)) for v in variants}
        server.wait_for(lambda _s: all(going_on(v) for v in variants), timeout=20)
        stalled = [variant for variant in variants if not going_on(variant)]
        assert not stalled, f"heartbeats stopped, or waiting events were not sent: {stalled}"
        _stop_all(first)
    with contextlib.ExitStack() as running:
        again = {v: running.enter_context(logged_host(configs[v], env)) for v in variants}
        # A restart sends what is left before its startup: once it is there, all is said.
        server.wait_for(lambda _s: all(len(sent(v, "startup")) >= 2 for v in variants), 20)
        assert all(len(sent(v, "startup")) >= 2 for v in variants), server.events

    counts = uuid_counts(server)
    sent_again = {v: [u for u in uuids_of(sent(v)) if counts[u] > 1] for v in variants}
    assert not any(sent_again.values()), f"sent again at a restart: {sent_again}"
    said = {
        v: [line for line in first[v].lines("stderr") if _names_field(line, v)] for v in variants
    }
    assert all(len(lines) == 1 for lines in said.values()), said
    assert not any(_names_field(line, v) for v in variants for line in again[v].lines("stderr"))
    for variant in variants:
        table, name, _ = WRONG_TYPED[variant]
        if table in ("meta", "session"):
            fixed = outbox_data(configs[variant])[table]["1"]
            assert fixed.get(name) is None or type(fixed[name]) is FIXED_TYPES[name], fixed


def _names_field(line: str, variant: str) -> bool:
    table, name, _ = WRONG_TYPED[variant]
    return line.startswith("WARNING") and (name or table) in line


# -- an older version's outbox, beside the config ----------------------------------------


def _old_outbox(folder: Path, waiting: list[Any], dropped: int = 2) -> Path:
    """The outbox an older version left beside the config, with its lock files."""
    old = folder / OLD_OUTBOX
    data = {
        "events": {str(n): dict(event) for n, event in enumerate(waiting, 1)},
        "meta": {"1": {"dropped": dropped, "lastDelivery": "2026-01-01T00:00:00+00:00"}},
        "session": {"1": {"instance": uuid.uuid4().hex, "startedAt": 1_700_000_000.0}},
    }
    old.write_text(json.dumps(data), encoding="utf-8")
    for end in (".lock", ".send", ".wire", ".members"):
        old.with_name(old.name + end).write_bytes(b"")
    return old


def test_an_old_outbox_is_taken_over_once(server: CaptureServer, config_path: Path) -> None:
    write_config(config_path, base_config(telemetryInstanceId=INSTANCE))
    left = events(5)
    waiting = uuids_of(left)
    old = _old_outbox(config_path.parent, left)
    before = status_json(config_path)
    assert before["outbox_pending"] == 5, before

    env = tracker_environ(server.url)
    outbox = outbox_path(config_path)
    # Two bots start at once: both look for the old outbox; one takes it over.
    with (
        logged_host(config_path, env, wait_ready=False) as first,
        logged_host(config_path, env, wait_ready=False) as second,
    ):
        ready(first)
        ready(second)
        assert server.wait_for(lambda s: set(waiting) <= set(uuids_of(s.events)), timeout=15)
        assert server.wait_for_events(1, name="startup", timeout=15)
        # Accepted and removed: a kill now leaves nothing to send again.
        assert wait_until(lambda: _event_uuids(outbox) == [], 15), first.stderr + second.stderr
    with logged_host(config_path, env) as again:
        assert server.wait_for_events(2, name="startup", timeout=15), again.stderr
        assert wait_until(lambda: _event_uuids(outbox) == [], 15), again.stderr

    counts = uuid_counts(server)
    assert [counts[uuid_] for uuid_ in waiting] == [1] * 5, counts
    assert max(counts.values()) == 1
    assert sorted(os.listdir(config_path.parent)) == [".slackonos-telemetry", "config.json"]
    assert not os.path.lexists(old)
    report = status_json(config_path)
    assert report["outbox_pending"] == 0 and report["outbox_dropped"] == 2, report


def test_an_old_outbox_over_the_cap_keeps_the_newest_and_counts_the_rest(
    config_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox already holds events when an older version's file, itself full, joins
    it: the newest 1,000 stay, oldest first, and every one dropped is counted, once."""
    write_config(config_path, base_config(telemetryInstanceId=INSTANCE))
    here = events(300, name="startup")
    outbox = outbox_for(config_path)
    for event in here:
        outbox.add(event)
    left = events(CAPACITY)
    _old_outbox(config_path.parent, left, dropped=2)

    with caplog.at_level(logging.WARNING, logger="slackonos_telemetry"):
        assert outbox.trim() == 0  # the first write takes it over, already trimmed
    kept = uuids_of(outbox.pending())
    assert kept == (uuids_of(here) + uuids_of(left))[-CAPACITY:]
    report = status_json(config_path)
    assert report["outbox_dropped"] == 2 + 300, report
    full = [record for record in caplog.records if "outbox full" in record.getMessage()]
    assert len(full) == 1, caplog.text
    assert not os.path.lexists(config_path.parent / OLD_OUTBOX)


def test_a_failed_write_while_taking_over_loses_nothing(
    server: CaptureServer, config_path: Path
) -> None:
    """The file holding the taken-over events cannot be written (here: a file size limit,
    as a full disk would): the old outbox stays until its events are safe elsewhere."""
    write_config(config_path, base_config(telemetryInstanceId=INSTANCE))
    taken = events(20)
    old = _old_outbox(config_path.parent, taken)
    limit = max(4096, len(config_path.read_bytes()) + 1)
    assert old.stat().st_size > 2 * limit

    wanted = set(uuids_of(taken))
    env = tracker_environ(server.url)
    with logged_host(config_path, env, file_size_limit=limit) as limited:
        said = limited.wait_for_line(lambda line: "File too large" in line, 15, stream="stderr")
        assert said is not None, limited.stderr
        stop(limited)
    # Not one event lost: each is still in the old file, or in the outbox.
    kept = {*_event_uuids(old), *_event_uuids(outbox_path(config_path))}
    assert wanted <= kept | set(uuids_of(server.events)), "taken-over events were lost"
    with logged_host(config_path, env) as unlimited:
        assert server.wait_for(lambda s: wanted <= set(uuids_of(s.events)), timeout=15), (
            unlimited.stderr
        )
        stop(unlimited)

    counts = uuid_counts(server)
    assert max(counts.values()) == 1, counts
    assert not os.path.lexists(old)


@pytest.mark.skipif(not AS_ROOT, reason="a file of another user's needs root to make")
def test_an_old_outbox_that_cannot_be_removed_is_taken_over_once(server: CaptureServer) -> None:
    """A sticky folder (mode 1777, as /tmp): the bot may write in it, but not remove
    another user's file. Its events are taken over once all the same, and sent once."""
    with writable_by_nobody() as base:
        _taken_over_from_a_sticky_folder(server, base / "shared")


def _taken_over_from_a_sticky_folder(server: CaptureServer, folder: Path) -> None:
    folder.mkdir()
    config = folder / "config.json"
    write_config(config, base_config(telemetryInstanceId=INSTANCE))
    os.chown(config, NOBODY, NOBODY)
    left = events(3)
    old = _old_outbox(folder, left)
    folder.chmod(0o1777)
    env = tracker_environ(server.url)

    for starts in (1, 2):
        with logged_host(config, env, as_nobody=True) as host:
            assert server.wait_for_events(starts, name="startup", timeout=15), host.stderr
            assert wait_until(lambda: _event_uuids(outbox_path(config)) == [], 15)
            stop(host)
        # Each run tries to remove it once, and says once that it cannot.
        assert len(warnings_naming(host, str(old))) == 1, host.stderr

    counts = uuid_counts(server)
    assert [counts[uuid_] for uuid_ in uuids_of(left)] == [1, 1, 1], counts
    assert max(counts.values()) == 1
    assert os.path.lexists(old)  # left, but never taken again
    report = status_json(config)
    assert report["outbox_pending"] == 0, report


def _event_uuids(path: Path) -> list[str]:
    """The uuids of the events in the outbox file at ``path`` (the state folder's, or the
    old one beside the config)."""
    return outbox_uuids(path, path)


def test_an_old_outbox_in_a_folder_that_cannot_be_written_is_left_alone(
    server: CaptureServer,
) -> None:
    content = json.dumps(base_config(telemetryInstanceId=INSTANCE), indent=2) + "\n"
    left = events(3)
    with read_only_config(content) as config, writable_by_nobody() as state_home:
        folder = config.path.parent
        mode = stat.S_IMODE(folder.stat().st_mode)
        folder.chmod(0o755)
        old = _old_outbox(folder, left)
        for path in folder.iterdir():
            path.chmod(0o644)
        folder.chmod(mode)
        before = tree(folder)
        env = tracker_environ(server.url, XDG_STATE_HOME=str(state_home))

        status = config.run_cli("--config", str(config.path), "status", env=env)
        with logged_host(config.path, env, as_nobody=True) as host:
            assert server.wait_for_events(1, name="startup", timeout=15), host.stderr
            stop(host)

        assert status.returncode == 0, status.stderr
        assert "3 more left by an older version" in status.stdout, status.stdout
        assert tree(folder) == before
        assert not set(uuids_of(left)) & set(uuids_of(server.events))
        assert len(warnings_naming(host, str(old))) == 1, host.stderr


def test_status_of_a_planted_state_folder_says_so_and_never_advises_chmod(
    tmp_path: Path,
) -> None:
    planted = plant(tmp_path, "state-folder-link")

    report = status_json(planted.config)

    said = " ".join([report["state_problem"] or "", *report["warnings"]])
    assert "symbolic link" in said, report
    assert "chmod" not in said, report
    assert re.search(re.escape(str(planted.path)), said), report
