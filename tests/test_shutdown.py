"""Shutdown (docs/CONTRACT.md, "Living in the host's process"): on SIGTERM, SIGINT and a
normal exit a `shutdown` event is made and delivery tried until
TELEMETRY_SHUTDOWN_TIMEOUT, never longer; the host's own handlers keep running and decide
how the process ends.

Each test runs tests/support/tracker_host.py as a real process and sends it real
signals; the capture server on loopback is the PostHog it talks to.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.capture import (
    ACCEPT,
    HANG,
    REFUSE,
    CaptureServer,
    capture_server,
)
from tests.support.environment import PYTHON
from tests.support.files import pending
from tests.support.processes import Process, started
from tests.support.trackers import tracker_environ, tracker_host
from tests.support.waiting import wait_until, within

SHUTDOWN_TIMEOUT = 1.0
GENEROUS_TIMEOUT = "10"  # when the server accepts: delivery, not the deadline, ends it


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with capture_server() as running:
        yield running


def _accepting_env(server: CaptureServer) -> dict[str, str]:
    return tracker_environ(server.url, TELEMETRY_SHUTDOWN_TIMEOUT=GENEROUS_TIMEOUT)


def _started(host: Process, server: CaptureServer) -> None:
    """The startup event arrived: the tracker runs and its SDK is loaded."""
    assert server.wait_for_events(1, name="startup", timeout=15), (server.events, host.stderr)


def _shutdown_received_at(server: CaptureServer) -> float:
    times = [
        record.received_at
        for record in server.requests
        if record.status == 200 and any(e.get("event") == "shutdown" for e in record.events)
    ]
    assert len(times) == 1, server.events
    return times[0]


def test_sigterm_delivers_the_shutdown_event(server: CaptureServer, config_path: Path) -> None:
    with tracker_host(config_path, env=_accepting_env(server)) as host:
        _started(host, server)
        host.signal(signal.SIGTERM)
        # No handler of the host's: it ends as SIGTERM's default action ends it.
        assert host.wait_exit(15) == -signal.SIGTERM
    shutdown = server.events_named("shutdown")
    assert len(shutdown) == 1, server.events
    startup = server.events_named("startup")[0]
    assert shutdown[0]["distinct_id"] == startup["distinct_id"]
    assert pending(config_path) == []


def test_normal_exit_delivers_the_shutdown_event(server: CaptureServer, config_path: Path) -> None:
    with tracker_host(config_path, env=_accepting_env(server)) as host:
        _started(host, server)
        host.send_line("exit")
        assert host.wait_exit(15) == 0
    assert len(server.events_named("shutdown")) == 1, server.events


@pytest.mark.parametrize("mode", [REFUSE, HANG])
@pytest.mark.parametrize(
    ("trigger", "own", "exit_code"),
    [
        ("SIGTERM", "none", -signal.SIGTERM),
        ("SIGTERM", "exit3", 3),
        ("exit", "none", 0),
    ],
    ids=["sigterm", "sigterm-host-exit3", "normal-exit"],
)
def test_shutdown_never_takes_longer_than_its_timeout(
    server: CaptureServer, config_path: Path, mode: str, trigger: str, own: str, exit_code: int
) -> None:
    server.set_mode(mode)
    env = tracker_environ(server.url, TELEMETRY_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT))
    with tracker_host(config_path, "--own", own, "--own-signals", "TERM", env=env) as host:
        # Events wait and the SDK is in use: the tracker is trying to send them.
        assert wait_until(lambda: pending(config_path) != [], 10), host.stderr
        assert wait_until(
            lambda: host.ask("modules", "modules")["posthog_loaded"], 10, interval=0.1
        )
        started = time.monotonic()
        if trigger == "exit":
            host.send_line("exit")
        else:
            host.signal(signal.SIGTERM)
        code = host.wait_exit(SHUTDOWN_TIMEOUT + 15)
        took = time.monotonic() - started
    assert code == exit_code, (host.stdout, host.stderr)
    assert took <= within(SHUTDOWN_TIMEOUT), f"shutdown took {took:.2f} s"
    assert server.events == []
    events = {event["event"] for event in pending(config_path)}
    assert "shutdown" in events  # kept for the next start


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_the_hosts_own_handler_runs_after_the_shutdown_event_and_decides_the_exit(
    server: CaptureServer, config_path: Path, signame: str
) -> None:
    signum = signal.Signals[signame]
    with tracker_host(config_path, "--own", "exit3", env=_accepting_env(server)) as host:
        _started(host, server)
        host.signal(signum)
        assert host.wait_exit(15) == 3, (host.stdout, host.stderr)
    handler = host.messages("handler")
    assert [message["signal"] for message in handler] == [signum], host.stdout
    # Both clocks are CLOCK_MONOTONIC, one per machine: comparable across processes.
    assert _shutdown_received_at(server) <= handler[0]["monotonic"]
    assert len(server.events_named("shutdown")) == 1


def test_a_host_handler_that_returns_keeps_the_process_running(
    server: CaptureServer, config_path: Path
) -> None:
    with tracker_host(config_path, "--own", "print", env=_accepting_env(server)) as host:
        _started(host, server)
        host.signal(signal.SIGTERM)
        handler = host.wait_for_messages("handler", 1, 15)[0]
        assert _shutdown_received_at(server) <= handler["monotonic"]
        assert host.ask("ping", "pong")["pid"] == host.pid  # still serving
        host.send_line("exit")
        assert host.wait_exit(15) == 0
    assert len(server.events_named("shutdown")) == 1, server.events  # once, not again at exit


def test_sigint_with_pythons_default_handler_still_raises_keyboard_interrupt(
    server: CaptureServer, config_path: Path
) -> None:
    with tracker_host(config_path, env=_accepting_env(server)) as host:
        _started(host, server)
        host.signal(signal.SIGINT)
        assert host.wait_exit(15) == 130, (host.stdout, host.stderr)
    interrupted = host.messages("keyboard-interrupt")
    assert len(interrupted) == 1, host.stdout
    # The host handled its KeyboardInterrupt first; the exit hook then sent the event.
    assert _shutdown_received_at(server) >= interrupted[0]["monotonic"]
    assert len(server.events_named("shutdown")) == 1


CTRL_C_HOST = """
import sys, time
from pathlib import Path
from slackonos_telemetry.telemetry import shutdown
from slackonos_telemetry.telemetry.quiet import QuietGate
from slackonos_telemetry.telemetry.tracker import Tracker

tracker = Tracker(Path(sys.argv[1]), quiet=QuietGate(after_seconds=0.0))
tracker.start()
shutdown.participate(tracker)
shutdown.install()
print("ready", flush=True)
time.sleep(60)
"""


def test_a_ctrl_c_traceback_shows_the_host_as_without_the_plugin(
    server: CaptureServer, config_path: Path
) -> None:
    command = [PYTHON, "-c", CTRL_C_HOST, str(config_path)]
    with started(command, env=_accepting_env(server)) as child:
        assert child.wait_for_line(lambda line: line == "ready") is not None, child.describe()
        _started_at(server)
        child.signal(signal.SIGINT)
        assert child.wait_exit(15) is not None, child.describe()
        stderr = child.stderr
    assert child.returncode == -signal.SIGINT, stderr
    traceback_lines = [line for line in stderr.splitlines() if line.startswith("  File ")]
    assert traceback_lines, stderr
    assert all("/slackonos_telemetry/" not in line for line in traceback_lines), stderr
    assert traceback_lines[-1].startswith('  File "<string>"'), stderr  # the host's own frame
    assert stderr.rstrip().endswith("KeyboardInterrupt"), stderr
    assert len(server.events_named("shutdown")) == 1, server.events


def _started_at(server: CaptureServer) -> None:
    assert server.wait_for_events(1, name="startup", timeout=15), server.requests


def test_a_host_that_ignores_sigterm_keeps_ignoring_it(
    server: CaptureServer, config_path: Path
) -> None:
    args = ("--own", "ignore", "--own-signals", "TERM")
    with tracker_host(config_path, *args, env=_accepting_env(server)) as host:
        _started(host, server)
        host.signal(signal.SIGTERM)
        # Any Python-level handler would run before the main thread reads this line.
        assert host.ask("ping", "pong")["pid"] == host.pid
        assert host.poll() is None
        assert server.events_named("shutdown") == []
        host.send_line("exit")
        assert host.wait_exit(15) == 0
    assert len(server.events_named("shutdown")) == 1, server.events  # the normal exit's


def test_shutdown_event_is_delivered_when_the_server_accepts_after_an_outage(
    server: CaptureServer, config_path: Path
) -> None:
    server.set_mode(REFUSE)
    with tracker_host(config_path, env=_accepting_env(server)) as host:
        assert wait_until(lambda: pending(config_path) != [], 10), host.stderr
        server.set_mode(ACCEPT)
        host.signal(signal.SIGTERM)
        assert host.wait_exit(15) == -signal.SIGTERM
    names = sorted(event["event"] for event in server.events)
    assert names == ["shutdown", "startup"], names
    assert pending(config_path) == []


class _RecordsItsDeadline:
    """A participant that notes the deadline it was given, and finishes at once."""

    def __init__(self) -> None:
        self.given: list[tuple[float, float]] = []  # (called at, deadline)

    def stop_for_exit(self, deadline: float, how: str) -> bool:
        self.given.append((time.monotonic(), deadline))
        return True


def test_a_round_that_ended_early_leaves_the_next_its_whole_timeout() -> None:
    """Defect pinned (found under load): an explicit shutdown that finished early left its
    deadline in the future, and a later one in the same process (another app's, another
    tracker's) inherited what was left of it instead of its own timeout."""
    from slackonos_telemetry.telemetry import shutdown

    first, later = _RecordsItsDeadline(), _RecordsItsDeadline()
    assert shutdown.run("explicit", 8.0, only=first)
    asked_at = time.monotonic()
    assert shutdown.run("explicit", 30.0, only=later)
    [(_, deadline)] = later.given
    # What was left of the first round's 8 s would end well before 30 s from now.
    assert deadline >= asked_at + 30.0, "the later round got the earlier one's deadline"
