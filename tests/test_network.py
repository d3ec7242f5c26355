"""Every request to PostHog is bounded, in time and in what it reads, and the CLI says what
happened (docs/CONTRACT.md, "CLI"; telemetry/http.py).

- An answer that trickles in a byte a second (its head, or the body of a 200) cannot
  hold ``flush`` past its deadline, nor a running bot's tracker: each request ends at
  its deadline and the heartbeats go on being made.
- A 200 whose body is 300 MB (or a gzip body that unpacks to 640 MB) is read no further
  than a few KB: the flush's peak memory is that of a flush to a normal endpoint.
- ``flush`` names what happened: a refused connection at once, a hanging or failing
  endpoint once its deadline passed, and the events kept.
- ``status --json`` says where each setting came from, when the last delivery was, the
  consent, and where the state lives.

Real processes (the CLI, a tracker host) against servers on 127.0.0.1: the capture
server, and the misbehaving ones of ``tests/support/misbehaving.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import pytest

from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from tests.support.capture import ACCEPT, ERROR_500, HANG, REFUSE, capture_server
from tests.support.cli import status_json
from tests.support.events import parse_utc, uuids_of
from tests.support.files import (
    last_slot,
    outbox_events,
    outbox_for,
    pending,
    state_folder,
    write_config,
)
from tests.support.misbehaving import (
    GZIP_BOMB,
    HUGE_BODY,
    TRICKLE_BODY,
    TRICKLE_HEAD,
    misbehaving_server,
)
from tests.support.processes import Finished, python_module, run_measured
from tests.support.trackers import tracker_environ, tracker_host
from tests.support.waiting import within

INSTANCE = "44444444-4444-4444-8444-444444444444"
PROCESS_LIMIT_SECONDS = 60.0
MIB = 1024 * 1024
# A flush that read the answer whole grew by 601 MiB (300 MB body) and 1,286 MiB (the gzip
# bomb); one that reads a few KB of it grows by nothing measurable.
MEMORY_MARGIN_MIB = 50
# The tracker's request deadline is delivery.DEFAULT_REQUEST_TIMEOUT (10 s): a second
# request follows a trickled first one after about 11 s.
HEARTBEAT_WAIT_SECONDS = 40.0
# flush's deadline where the words are tested: the interpreter and the SDK load first (1 s
# and more on a loaded machine), then the tries must fit.
FLUSH_SECONDS = 4


def run_measured_cli(config_path: Path, *args: str, env: Mapping[str, str]) -> Finished:
    """`python -m slackonos_telemetry --config PATH ARGS`, with its peak memory."""
    command = python_module("slackonos_telemetry", "--config", str(config_path), *args)
    return run_measured(command, env=env, limit=PROCESS_LIMIT_SECONDS)


def waiting_events(config_path: Path, count: int = 3) -> list[str]:
    """A config with an instance ID and ``count`` heartbeats waiting in its outbox."""
    write_config(config_path, {"telemetryInstanceId": INSTANCE, "telemetryNoticeShown": True})
    facts = RuntimeFacts.gather("1.0", "network-test")
    events = [make_event("heartbeat", INSTANCE, facts, 3600.0 * n) for n in range(count)]
    outbox = outbox_for(config_path)
    for event in events:
        outbox.add(event)
    return uuids_of(events)


def flush(config_path: Path, url: str, timeout: float) -> Finished:
    return run_measured_cli(
        config_path, "flush", "--timeout", f"{timeout:g}", env=tracker_environ(url)
    )


def heartbeat_uuids(config_path: Path) -> set[str]:
    return {
        str(event.get("uuid"))
        for event in outbox_events(config_path)
        if event.get("event") == "heartbeat"
    }


def heartbeats_made(config_path: Path) -> tuple[int, int]:
    """(heartbeat events in the outbox, the session's last heartbeat slot)."""
    return len(heartbeat_uuids(config_path)), last_slot(config_path)


# -- an overall deadline, not a per-read timeout ----------------------------------------------


def test_flush_ends_at_its_deadline_when_the_answers_head_trickles(config_path: Path) -> None:
    waiting = waiting_events(config_path)
    with misbehaving_server(TRICKLE_HEAD) as server:
        finished = flush(config_path, server.url, 3)
        assert server.wait_for(1, ended=True, timeout=5), "the connection was left open"
        arrival = server.arrivals[0]

    assert finished.seconds <= within(3), f"flush --timeout 3 took {finished.seconds:.1f} s"
    assert finished.code == 1, finished
    line = finished.error_line()
    assert "still waiting after 3 s" in line and "3 event(s) kept for the next try" in line, line
    # What happened is the deadline, not a server that hung up.
    assert "in time" in line and "Remote end closed" not in line, line
    assert pending_uuids(config_path) == waiting
    assert arrival.uuids == waiting and arrival.client_left, arrival
    assert arrival.bytes_sent < 60, "the head came whole: the test did not trickle"


def test_flush_ends_at_its_deadline_when_a_200s_body_trickles(config_path: Path) -> None:
    # The status line and headers of a 200 came at once: that is PostHog's acceptance
    # (the SDK reads no body of /batch/). The deadline cuts the body; the events were
    # delivered, and are not sent again.
    waiting = waiting_events(config_path)
    with misbehaving_server(TRICKLE_BODY) as server:
        finished = flush(config_path, server.url, 3)
        assert server.wait_for(1, ended=True, timeout=5), "the connection was left open"
        arrival = server.arrivals[0]

    assert finished.seconds <= within(3), f"flush --timeout 3 took {finished.seconds:.1f} s"
    assert finished.code == 0, finished
    assert finished.stdout.startswith("Sent 3 event(s)"), finished
    assert pending_uuids(config_path) == []
    assert arrival.uuids == waiting and arrival.client_left, arrival


def test_a_running_bot_keeps_making_heartbeats_while_answers_trickle(config_path: Path) -> None:
    # The tracker sends and makes heartbeats on one thread: a request that never ended
    # (a byte a second defeats a per-read timeout) stopped the heartbeats for good. Here
    # the first request is cut at its deadline, the next slot's heartbeat is made, and the
    # next request carries it. Counted in events made and slots, not in seconds.
    write_config(config_path, {"telemetryNoticeShown": True})
    with misbehaving_server(TRICKLE_HEAD) as server:
        env = tracker_environ(server.url, TELEMETRY_HEARTBEAT_SECONDS="1")
        with tracker_host(config_path, env=env) as host:
            second = server.wait_for(2, timeout=HEARTBEAT_WAIT_SECONDS)
            made, slot = heartbeats_made(config_path)
            assert second, (
                f"{made} heartbeat(s) made, last slot {slot}, "
                f"{len(server.arrivals)} request(s)\n{host.stderr}"
            )
            first, then = server.arrivals[:2]
            heartbeats = heartbeat_uuids(config_path)

    assert first.client_left and first.ended_at is not None, "the first request was not cut"
    assert first.ended_at <= then.arrived_at, (first, then)
    made_since = (set(then.uuids) - set(first.uuids)) & heartbeats
    assert made_since, f"no heartbeat made behind the first request: {first}, {then}"
    # One heartbeat per slot at most: missed slots are skipped, not made in a burst.
    assert 1 <= made <= slot, (made, slot)


# -- at most a few KB of an answer ------------------------------------------------------------


def test_a_huge_answer_is_not_read_whole(config_path: Path, tmp_path: Path) -> None:
    # A 200 whose body is 300 MB, and one whose 640 KB of gzip unpack to 640 MB, against a
    # flush to a normal endpoint: the same peak memory, within the margin.
    configs = {mode: tmp_path / mode / "config.json" for mode in (HUGE_BODY, GZIP_BOMB)}
    waiting_events(config_path)
    with capture_server(ACCEPT) as normal:
        baseline = flush(config_path, normal.url, 20)
    assert baseline.code == 0, baseline
    grown: dict[str, float] = {}
    for mode, config in configs.items():
        waiting_events(config)
        with misbehaving_server(mode) as server:
            huge = flush(config, server.url, 20)
            assert server.wait_for(1, ended=True, timeout=10), "the connection was left open"
            arrival = server.arrivals[0]
        assert huge.code == 0, huge  # a 200: accepted, whatever its body
        assert pending_uuids(config) == []
        grown[mode] = (huge.peak_bytes - baseline.peak_bytes) / MIB
        if mode == HUGE_BODY:  # (the bomb's 640 KB fit in the sockets' buffers)
            assert arrival.client_left, f"the flush read the whole answer (+{grown[mode]} MiB)"

    assert all(size < MEMORY_MARGIN_MIB for size in grown.values()), (
        f"peak MiB above the {baseline.peak_bytes / MIB:.0f} MiB of a normal answer: {grown}"
    )


# -- flush says what happened ---------------------------------------------------------------


def test_flush_to_a_refused_connection_fails_at_once(config_path: Path) -> None:
    waiting = waiting_events(config_path)
    with capture_server(REFUSE) as server:
        finished = flush(config_path, server.url, 30)
    assert finished.code == 1, finished
    line = finished.error_line()
    assert "failed at once: connection refused; 3 event(s) kept for the next try" in line, line
    assert "still waiting" not in line, line
    # Nothing listens: no use waiting out the 30 s.
    assert finished.seconds < 30 / 2, f"took {finished.seconds:.1f} s"
    assert pending_uuids(config_path) == waiting


@pytest.mark.parametrize(
    ("mode", "answered", "words"),
    [
        (HANG, None, "no complete answer in time"),
        (ERROR_500, None, "HTTP 500"),
        # A 500, then a try the deadline cut: what the server said is the news.
        (ERROR_500, 1, "HTTP 500"),
    ],
    ids=["hang", "500", "500-then-hang"],
)
def test_flush_to_a_failing_endpoint_says_it_is_still_waiting(
    config_path: Path, mode: str, answered: int | None, words: str
) -> None:
    waiting = waiting_events(config_path)
    with capture_server(mode) as server:
        if answered is not None:
            server.hang_after(answered)
        finished = flush(config_path, server.url, FLUSH_SECONDS)
        assert server.wait_for_request(0), "flush never tried"
        tries = len(server.requests)
    assert finished.code == 1, finished
    assert finished.seconds <= within(FLUSH_SECONDS), f"flush took {finished.seconds:.1f} s"
    line = finished.error_line()
    assert line.startswith(
        f"slackonos-telemetry: error: still waiting after {FLUSH_SECONDS} s ("
    ), line
    assert words in line and line.endswith("; 3 event(s) kept for the next try"), line
    assert "Remote end closed" not in line, line
    assert pending_uuids(config_path) == waiting
    if answered is not None:
        assert tries == answered + 1, "the test needs a last try that hung"


# -- status --json -----------------------------------------------------------------------


def test_status_json_after_a_real_delivery(config_path: Path) -> None:
    waiting_events(config_path)
    with capture_server(ACCEPT) as server:
        env = tracker_environ(server.url)
        before = status_json(config_path, env)
        flushed_from = datetime.now(timezone.utc).replace(microsecond=0)
        finished = flush(config_path, server.url, 20)
        assert finished.code == 0, finished
        assert len(server.events) == 3
        after = status_json(config_path, env)

    assert before["last_delivery"] is None and before["outbox_pending"] == 3, before
    assert after["outbox_pending"] == 0, after
    delivered = parse_utc(after["last_delivery"])
    assert flushed_from <= delivered <= datetime.now(timezone.utc), after["last_delivery"]
    assert after["sources"] == {
        "enabled": "default",
        "api_key": "env:TELEMETRY_API_KEY",
        "host": "env:TELEMETRY_HOST",
    }
    assert after["consent"] == "on" and after["enabled"] is True, after
    assert after["host"] == server.url, after
    assert after["state_dir"] == str(state_folder(config_path)), after
    assert after["state_reason"] == "beside the config file", after
    assert after["state_problem"] is None, after


def test_status_json_names_the_source_of_each_setting(config_path: Path, tmp_path: Path) -> None:
    config = {
        "telemetryInstanceId": INSTANCE,
        "telemetryEnabled": True,
        "telemetryHost": "http://127.0.0.1:9",
        "telemetryApiKey": "phc_fromTheConfigFile0123456789abcdefghijklm",
    }
    write_config(config_path, config)
    from_config = status_json(config_path, {})
    elsewhere = tmp_path / "state-elsewhere"
    overridden = status_json(
        config_path,
        {
            "TELEMETRY_ENABLED": "false",
            "TELEMETRY_HOST": "http://127.0.0.1:10",
            "TELEMETRY_API_KEY": "phc_fromTheEnvironment0123456789abcdefghijk",
            "TELEMETRY_STATE_DIR": str(elsewhere),
        },
    )
    dnt = status_json(config_path, {"DO_NOT_TRACK": "1"})

    assert from_config["sources"] == {"enabled": "config", "api_key": "config", "host": "config"}
    assert from_config["consent"] == "on" and from_config["last_delivery"] is None
    assert overridden["sources"] == {
        "enabled": "env:TELEMETRY_ENABLED",
        "api_key": "env:TELEMETRY_API_KEY",
        "host": "env:TELEMETRY_HOST",
    }
    assert overridden["consent"] == "off" and overridden["enabled"] is False, overridden
    assert overridden["host"] == "http://127.0.0.1:10", overridden
    assert overridden["state_dir"] == str(elsewhere), overridden
    assert overridden["state_reason"] == "TELEMETRY_STATE_DIR is set", overridden
    assert dnt["sources"]["enabled"] == "env:DO_NOT_TRACK" and dnt["consent"] == "off", dnt
    assert not elsewhere.exists(), "status wrote the state folder"


def pending_uuids(config_path: Path) -> list[str]:
    return uuids_of(pending(config_path))
