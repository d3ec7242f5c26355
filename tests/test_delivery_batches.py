"""Delivery in batches (docs/CONTRACT.md, "Delivery"): batches through the SDK, and files
read once per change.

- A batch PostHog rejects (a 4xx other than 408 and 429) is tried again event by event:
  one bad event never blocks or drops the others.
- A flush interrupted mid-way (killed while a batch hangs) loses nothing and doubles
  nothing, by uuid, when the next one finishes the work.
- A hand edit of the config within the same second, same size, new content, is seen.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path

from slackonos_telemetry.config.settings import resolve_settings
from slackonos_telemetry.telemetry.consent import decide
from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from slackonos_telemetry.telemetry.outcome import BATCH_SIZE
from tests.support.capture import ACCEPT, CaptureServer
from tests.support.cli import cli_process, run_cli
from tests.support.files import outbox_for, pending, write_config

INSTANCE = "44444444-4444-4444-8444-444444444444"
API_KEY = "phc_batch_test"


def _waiting(config_path: Path, count: int) -> list[str]:
    write_config(config_path, {"telemetryInstanceId": INSTANCE})
    facts = RuntimeFacts("1.0", "batch-test", "linux", "6.1", "3.11.7")
    events = [make_event("heartbeat", INSTANCE, facts, 3600.0 * n) for n in range(count)]
    with outbox_for(config_path).transaction() as outbox:
        for event in events:
            outbox.add(event)
    return [event["uuid"] for event in events]


def _flush_env(server: CaptureServer) -> dict[str, str]:
    return {"TELEMETRY_HOST": server.url, "TELEMETRY_API_KEY": API_KEY}


def test_a_batch_with_one_bad_event_delivers_the_rest(config_path: Path) -> None:
    uuids = _waiting(config_path, 5)
    bad = uuids[2]
    with CaptureServer(ACCEPT) as server:
        server.reject_batches_with(bad)
        result = run_cli("--config", str(config_path), "flush", env=_flush_env(server))
        requests = server.requests
        delivered = [event["uuid"] for event in server.events]

    assert result.returncode == 0, result.stderr
    assert sorted(delivered) == sorted(set(uuids) - {bad})  # the others, each once
    assert len(delivered) == len(set(delivered))
    assert requests[0].status == 400 and len(requests[0].events) == 5  # one batch first
    assert all(len(record.events) == 1 for record in requests[1:])  # then one by one
    assert pending(config_path) == []  # the bad one dropped, not retried forever
    assert "dropped 1 refused by PostHog" in result.stdout, result.stdout


def test_a_flush_interrupted_midway_loses_nothing_and_doubles_nothing(config_path: Path) -> None:
    uuids = _waiting(config_path, BATCH_SIZE * 4 + 7)
    with CaptureServer(ACCEPT) as server:
        server.hang_after(2)  # two batches accepted, the third never answered
        args = ("--config", str(config_path), "flush", "--timeout", "60")
        with cli_process(*args, env=_flush_env(server)) as first:
            assert server.wait_for(
                lambda s: any(record.status is None for record in s.requests), timeout=30
            ), server.requests
            first.signal(signal.SIGKILL)
            assert first.wait_exit(30) == -signal.SIGKILL, first.describe()
        accepted_before = {event["uuid"] for event in server.events}
        assert len(accepted_before) == 2 * BATCH_SIZE
        assert {event["uuid"] for event in pending(config_path)} == set(uuids) - accepted_before

        server.hang_after(10**6)
        result = run_cli("--config", str(config_path), "flush", env=_flush_env(server))
        delivered = Counter(event["uuid"] for event in server.events)

    assert result.returncode == 0, result.stderr
    assert set(delivered) == set(uuids), "an event was lost"
    assert set(delivered.values()) == {1}, "an event was delivered twice"
    assert pending(config_path) == []


def test_a_hand_edit_within_the_same_second_and_of_the_same_size_is_seen(
    config_path: Path,
) -> None:
    write_config(config_path, {"telemetryEnabled": True, "gongLimit": 3})
    assert decide(resolve_settings(config_path)).enabled is True  # parsed, and remembered
    before = config_path.stat()

    # An editor writing in place: same inode, same size, the same timestamps even (a
    # file system whose clock ticks once a second shows no change at all).
    text = config_path.read_text(encoding="utf-8")
    edited = text.replace('"telemetryEnabled": true', '"telemetryEnabled": 0   ')
    assert len(edited) == len(text)
    with open(config_path, "r+", encoding="utf-8") as handle:
        handle.write(edited)
    os.utime(config_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = config_path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )

    decision = decide(resolve_settings(config_path))
    assert decision.enabled is False, decision.reason
    assert json.loads(config_path.read_text(encoding="utf-8"))["telemetryEnabled"] == 0


def test_a_config_that_did_not_change_is_not_parsed_again(config_path: Path) -> None:
    from slackonos_telemetry.config import filecache

    write_config(config_path, {"telemetryEnabled": True})
    stamp = config_path.stat().st_mtime_ns - int(2 * filecache.RACY_SECONDS * 1e9)
    os.utime(config_path, ns=(stamp, stamp))  # still long enough to be trusted
    first = resolve_settings(config_path)
    parses: list[Path] = []
    original = filecache.ParsedFileCache.load

    def counting(self: filecache.ParsedFileCache, path: Path, parse, variant=None):  # type: ignore[no-untyped-def]
        def counted():  # type: ignore[no-untyped-def]
            parses.append(path)
            return parse()

        return original(self, path, counted, variant)

    filecache.ParsedFileCache.load = counting  # type: ignore[method-assign]
    try:
        for _ in range(5):
            assert resolve_settings(config_path).config_enabled is first.config_enabled
    finally:
        filecache.ParsedFileCache.load = original  # type: ignore[method-assign]
    assert parses == []
