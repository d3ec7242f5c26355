"""A tracker (the plugin's telemetry part) on a config file: in this process, or in a host
program of its own (tests/support/hosts/tracker_host.py) as a bot runs it.

Everything here cleans up after itself: a host process is killed and reaped, a tracker
is shut down with a short deadline, even when the test failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from slackonos_telemetry.telemetry.delivery import RetryPolicy
from slackonos_telemetry.telemetry.quiet import QuietGate
from slackonos_telemetry.telemetry.tracker import Tracker
from tests.support.environment import PYTHON
from tests.support.processes import Process, started
from tests.support.users import AS_ROOT, NOBODY, nobody_python_or_skip, python_path
from tests.support.waiting import within

HOST_SCRIPT = Path(__file__).parent / "hosts" / "tracker_host.py"
TEST_API_KEY = "phc_test_key_for_the_capture_server"
SMALL_RETRY = RetryPolicy(base=0.05, cap=0.3)
HOST_START_TIMEOUT = 20.0
EXIT_SECONDS = 10.0  # a normal exit of a host: its shutdown, then the interpreter's end


def tracker_environ(server_url: str, **extra: str) -> dict[str, str]:
    """The environment of a bot sending to ``server_url`` (the capture server)."""
    env = {
        "TELEMETRY_HOST": server_url,
        "TELEMETRY_API_KEY": TEST_API_KEY,
        "SLACKONOS_RELEASE": "test-release",
    }
    env.update(extra)
    return env


@contextlib.contextmanager
def running_tracker(
    config_path: Path,
    server_url: str,
    *,
    env: Mapping[str, str] | None = None,
    app_version: str | None = None,
    retry_policy: RetryPolicy = SMALL_RETRY,
    stop_timeout: float = 0.5,
) -> Iterator[Tracker]:
    """A Tracker started in this process; shut down (bounded) on the way out."""
    tracker = Tracker(
        config_path,
        app_version=app_version,
        environ=tracker_environ(server_url, **dict(env or {})),
        retry_policy=retry_policy,
        quiet=QuietGate(after_seconds=0.0),
    )
    tracker.start()
    try:
        yield tracker
    finally:
        tracker.shutdown(timeout=stop_timeout)


@contextlib.contextmanager
def tracker_host(
    config_path: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    wait_ready: bool = True,
    log: bool = False,
    file_size_limit: int | None = None,
    as_nobody: bool = False,
) -> Iterator[Process]:
    """The host program on ``config_path`` (``args``: its options), ready; killed and
    reaped on the way out. ``log``: the plugin's warnings on its stderr;
    ``file_size_limit``: no file it writes grows past that; ``as_nobody``: run as user
    nobody when the tests run as root."""
    python = PYTHON
    options: dict[str, Any] = {}
    if as_nobody and cwd is None:
        cwd = config_path.parent.parent  # (a temp folder of root's is closed to nobody)
    extra = dict(env or {})
    if as_nobody and AS_ROOT:
        python = nobody_python_or_skip()
        options["user"] = NOBODY
        extra.update(PYTHONPATH=python_path(), PYTHONDONTWRITEBYTECODE="1")
    command = [python, str(HOST_SCRIPT), "--config", str(config_path), *args]
    if log:
        command.append("--log")
    if file_size_limit is not None:
        command += ["--file-size-limit", str(file_size_limit)]
    with started(command, env=extra, cwd=cwd, **options) as host:
        if wait_ready:
            ready(host)
        yield host


def ready(host: Process, timeout: float = HOST_START_TIMEOUT) -> None:
    """Until the host says it runs (its tracker started and hooked)."""
    line = host.wait_for_line(lambda text: text == "ready", timeout)
    assert line is not None, f"host not ready\n{host.describe()}"


def exit_normally(host: Process, timeout: float = within(EXIT_SECONDS)) -> None:
    """A normal interpreter exit of the host (its shutdown runs), bounded."""
    host.send_line("exit")
    assert host.wait_exit(timeout) == 0, host.describe()
