"""Helpers for the tracker tests: a host subprocess, an in-process tracker, bounded waits.

Everything here cleans up after itself: a host process is killed and reaped, a
tracker is shut down with a short deadline, even when the test failed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from slackonos_telemetry.telemetry.delivery import RetryPolicy
from slackonos_telemetry.telemetry.outbox import Outbox
from slackonos_telemetry.telemetry.quiet import QuietGate
from slackonos_telemetry.telemetry.tracker import Tracker
from tests.support.capture import CaptureServer
from tests.support.environment import clean_environ, run_cli
from tests.support.state import outbox_for as state_outbox_for
from tests.support.state import outbox_path as state_outbox_path

HOST_SCRIPT = Path(__file__).parent / "tracker_host.py"
TEST_API_KEY = "phc_test_key_for_the_capture_server"

# SPEC section 4: the properties of every event, and of each event besides.
COMMON_PROPERTIES = frozenset(
    {
        "instance_id",
        "os_platform",
        "os_release",
        "python_version",
        "app_version",
        "release",
        "$process_person_profile",
    }
)
EVENT_PROPERTIES = {
    "startup": COMMON_PROPERTIES,
    "heartbeat": COMMON_PROPERTIES | {"uptime_hours", "uptime_days"},
    "shutdown": COMMON_PROPERTIES | {"total_runtime_hours", "total_runtime_days"},
}
# The SDK's own properties that go on the wire (docs/TELEMETRY.md): the only others.
SDK_PROPERTIES = frozenset({"$lib", "$lib_version", "$geoip_disable"})
EVENT_KEYS = frozenset({"event", "distinct_id", "uuid", "timestamp", "properties"})

SMALL_RETRY = RetryPolicy(base=0.05, cap=0.3)
HOST_START_TIMEOUT = 20.0


# -- waiting -------------------------------------------------------------------


# -- files ---------------------------------------------------------------------


def outbox_path(config_path: Path) -> Path:
    return state_outbox_path(config_path)


def outbox_for(config_path: Path) -> Outbox:
    return state_outbox_for(config_path)


def pending(config_path: Path) -> list[dict[str, Any]]:
    return outbox_for(config_path).pending()


def write_config(config_path: Path, data: Mapping[str, Any]) -> None:
    """A hand edit: the file written whole, as a person's editor would."""
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(dict(data), indent=2) + "\n", encoding="utf-8")


def read_config(config_path: Path) -> dict[str, Any]:
    data = json.loads(config_path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def cli(config_path: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run a CLI command that must succeed; its stdout."""
    result = run_cli("--config", str(config_path), *args, env=env)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def status_json(config_path: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    data = json.loads(cli(config_path, "status", "--json", env=env))
    assert isinstance(data, dict)
    return data


# -- events --------------------------------------------------------------------


def uuids_of(events: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(event.get("uuid")) for event in events]


def uuid_counts(server: CaptureServer) -> Counter[str]:
    return Counter(uuids_of(server.events))


def requested_uuids(server: CaptureServer) -> Counter[str]:
    """How many requests carried each uuid, whatever the answer was."""
    return Counter(uuid for record in server.requests for uuid in uuids_of(record.events))


def assert_uuid4(value: Any) -> None:
    assert isinstance(value, str), value
    parsed = uuid.UUID(value)
    assert str(parsed) == value.lower(), value
    assert parsed.version == 4, value


def parse_utc(value: Any) -> datetime:
    """An ISO 8601 timestamp that names UTC (offset zero)."""
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


def own_properties(event: Mapping[str, Any]) -> dict[str, Any]:
    """An event's properties without those the SDK adds by itself."""
    properties = event["properties"]
    return {key: value for key, value in properties.items() if key not in SDK_PROPERTIES}


def word_in(word: str, text: str) -> bool:
    """``word`` appears in ``text`` as a whole token (not inside a longer word)."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", text) is not None


# -- an in-process tracker -------------------------------------------------------


def tracker_environ(server_url: str, **extra: str) -> dict[str, str]:
    env = {
        "TELEMETRY_HOST": server_url,
        "TELEMETRY_API_KEY": TEST_API_KEY,
        "SLACKONOS_RELEASE": "test-release",
    }
    env.update(extra)
    return env


@contextmanager
def running_tracker(
    config_path: Path,
    server_url: str,
    *,
    env: Mapping[str, str] | None = None,
    app_version: str | None = None,
    retry_policy: RetryPolicy = SMALL_RETRY,
    stop_timeout: float = 0.5,
) -> Iterator[Tracker]:
    """A started Tracker; shut down (bounded) on the way out."""
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


# -- a host subprocess -----------------------------------------------------------


class Host:
    """tests/support/tracker_host.py running; its output lines collected by threads."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._ended: set[int] = set()  # ids of the line lists whose stream reached EOF
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(process.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(process.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._ended.add(id(lines))
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for_line(
        self, predicate: Callable[[str], bool], timeout: float, stream: str = "stdout"
    ) -> str | None:
        lines = self.stdout if stream == "stdout" else self.stderr
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or id(lines) in self._ended:
                    return None
                self._changed.wait(min(remaining, 0.1))

    def messages(self, kind: str) -> list[dict[str, Any]]:
        with self._changed:
            lines = list(self.stdout)
        found = []
        for line in lines:
            if line.startswith("{"):
                message = json.loads(line)
                if message.get("kind") == kind:
                    found.append(message)
        return found

    def wait_for_message(self, kind: str, timeout: float) -> dict[str, Any]:
        line = self.wait_for_line(lambda text: f'"kind": "{kind}"' in text, timeout)
        assert line is not None, f"no {kind!r} line; stdout={self.stdout} stderr={self.stderr}"
        message = json.loads(line)
        assert isinstance(message, dict)
        return message

    def wait_ready(self, timeout: float = HOST_START_TIMEOUT) -> None:
        line = self.wait_for_line(lambda text: text == "ready", timeout)
        assert line is not None, f"host not ready: stdout={self.stdout} stderr={self.stderr}"

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def ask(self, command: str, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        before = len(self.messages(kind))
        self.send(command)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._changed:
                ended = id(self.stdout) in self._ended
            found = self.messages(kind)
            if len(found) > before:
                return found[before]
            if ended:  # the host is gone: no answer will come
                break
            self.wait_for_line(lambda _text: False, 0.05)
        raise AssertionError(
            f"no answer {kind!r} to {command!r} (exit code {self.process.poll()}): "
            f"stdout={self.stdout} stderr={self.stderr}"
        )

    def modules(self) -> dict[str, Any]:
        return self.ask("modules", "modules")

    def wait_exit(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with suppress(OSError):
                    stream.close()


@contextmanager
def running_host(
    config_path: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    wait_ready: bool = True,
) -> Iterator[Host]:
    """The host program on ``config_path``, ready; killed and reaped on the way out."""
    process = subprocess.Popen(
        [sys.executable, str(HOST_SCRIPT), "--config", str(config_path), *args],
        env=clean_environ(env),
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    host = Host(process)
    try:
        if wait_ready:
            host.wait_ready()
        yield host
    finally:
        host.close()


def host_environ(server_url: str, **extra: str) -> dict[str, str]:
    return tracker_environ(server_url, **extra)
