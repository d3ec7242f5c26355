"""Helpers for the run-mode tests: the bot as a real subprocess, Slack-signed HTTP
requests, and a Socket Mode WebSocket stand-in on 127.0.0.1.

Every wait here is bounded; every process and server is closed by its context
manager, also when a test fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from slackonos_telemetry.run.local_slack import ADMIN_CHANNEL_ID, BOT_USER_ID, TEAM_ID
from tests.support import signing
from tests.support.environment import clean_environ
from tests.support.state import outbox_path

PROG_ERROR = "slackonos-telemetry: error: "
ADMIN_USER = "U0ADMIN01"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-1-A0TEST-1234-abcdef"
WAIT = 15.0  # upper bound of any single wait for the bot to do something
REAP = 20.0  # upper bound for a process to end once told to
SHUTDOWN_TIMEOUT = 1.0  # TELEMETRY_SHUTDOWN_TIMEOUT given to bots whose exit is timed
BOOLEAN_WORDS = ("true", "false", "yes", "no", "on", "off", "1", "0")

_numbers = itertools.count(1)


# -- the bot as a subprocess ---------------------------------------------------------------


class BotProcess:
    """`python -m slackonos_telemetry ARGS` (or any ``command``), its output read as it comes."""

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str],
        cwd: Path | None,
        command: list[str] | None = None,
    ) -> None:
        self.args = args
        self._lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            command or [sys.executable, "-m", "slackonos_telemetry", *args],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str, stream: IO[str] | None) -> None:
        if stream is None:
            return
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                with self._changed:
                    self._lines[name].append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    # -- output --------------------------------------------------------------

    @property
    def stdout(self) -> str:
        with self._changed:
            return "\n".join(self._lines["stdout"])

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self._lines["stderr"])

    def stdout_lines(self) -> list[str]:
        with self._changed:
            return list(self._lines["stdout"])

    def wait_for_stdout(
        self, condition: Callable[[str], bool], timeout: float = WAIT, start: int = 0
    ) -> bool:
        """Until ``condition`` holds for the stdout lines from ``start`` on (bounded);
        False also when the process ended without it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if condition("\n".join(self._lines["stdout"][start:])):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reading()):
                    return condition("\n".join(self._lines["stdout"][start:]))
                self._changed.wait(min(remaining, 0.2))

    def _reading(self) -> bool:
        return any(reader.is_alive() for reader in self._readers)

    def describe(self) -> str:
        return (
            f"args: {self.args}\nexit code: {self.proc.poll()}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    # -- input and control -----------------------------------------------------

    def send_line(self, text: str) -> int:
        """Type a line; returns the stdout line count before it, for ``start``."""
        start = len(self.stdout_lines())
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return start

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = REAP) -> int | None:
        """The exit code once the process ended (bounded), then its output read to the end."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for reader in self._readers:
            reader.join(5)
        return code

    def timed_exit(self, action: Callable[[], None], timeout: float = REAP) -> tuple[int, float]:
        """Run ``action`` (a signal, closing stdin) and measure the time until exit."""
        started = time.monotonic()
        action()
        code = self.wait_exit(timeout)
        took = time.monotonic() - started
        assert code is not None, f"still running {timeout:g} s later\n{self.describe()}"
        return code, took

    def stop(self) -> None:
        """Kill (if still running) and reap; close the pipes."""
        self.close_stdin()
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(REAP)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@contextlib.contextmanager
def bot_process(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Iterator[BotProcess]:
    bot = BotProcess(list(args), clean_environ(env), cwd)
    try:
        yield bot
    finally:
        bot.stop()


@contextlib.contextmanager
def program(
    command: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Iterator[BotProcess]:
    """Any program (a server such as gunicorn, a test host) run like a bot; killed at the end."""
    bot = BotProcess(command, clean_environ(env), cwd, command=command)
    try:
        yield bot
    finally:
        bot.stop()


def run_bot(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = REAP
) -> subprocess.CompletedProcess[str]:
    """Run to the end with stdin closed (bounded)."""
    return subprocess.run(
        [sys.executable, "-m", "slackonos_telemetry", *args],
        env=clean_environ(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def error_lines(stderr: str) -> list[str]:
    """The CLI's own error lines, each with any lines that continue it (a multi-line
    message) joined to it."""
    found: list[str] = []
    lines = stderr.splitlines()
    for number, line in enumerate(lines):
        if line.startswith(PROG_ERROR):
            found.append(line)
            continuation = itertools.takewhile(
                lambda text: not _looks_like_log_line(text), lines[number + 1 :]
            )
            found[-1] = "\n".join([line, *continuation])
    return found


def _looks_like_log_line(text: str) -> bool:
    # logging.basicConfig in run: "2026-01-01 12:00:00,000 LEVEL name: message"
    return len(text) > 20 and text[:4].isdigit() and text[4] == "-"


# -- network ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, bot: BotProcess, host: str = "127.0.0.1", timeout: float = WAIT
) -> None:
    """Until ``host:port`` accepts a connection (bounded); fails early if the bot ended."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            pass
        assert bot.proc.poll() is None, f"the bot ended before listening\n{bot.describe()}"
        assert time.monotonic() < deadline, f"nothing listens on {host}:{port}\n{bot.describe()}"
        time.sleep(0.05)


def connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def signed_headers(
    body: str, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    return signing.signed_headers(body, secret, timestamp)


def post_json(url: str, body: str, headers: Mapping[str, str]) -> int:
    return signing.post(url, body, headers)


# -- Slack payloads -------------------------------------------------------------------------


def message_event(
    text: str,
    *,
    channel: str = ADMIN_CHANNEL_ID,
    channel_type: str = "channel",
    user: str = ADMIN_USER,
    kind: str = "message",
) -> dict[str, Any]:
    number = next(_numbers)
    ts = f"{int(time.time())}.{number:06d}"
    return {
        "type": kind,
        "channel": channel,
        "channel_type": channel_type,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "team": TEAM_ID,
    }


def event_callback(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "A0TELEMETRY",
        "type": "event_callback",
        "event_id": f"Ev{next(_numbers):010d}",
        "event_time": int(time.time()),
        "event": event,
        "authorizations": [
            {"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True, "enterprise_id": None}
        ],
    }


def events_api_envelope(body: dict[str, Any], envelope_id: str) -> dict[str, Any]:
    return {
        "envelope_id": envelope_id,
        "type": "events_api",
        "accepts_response_payload": False,
        "retry_attempt": 0,
        "retry_reason": "",
        "payload": body,
    }


# -- files ------------------------------------------------------------------------------------


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def outbox_events(config_path: Path) -> list[dict[str, Any]]:
    """The events in the outbox file beside the config, whatever its table names."""
    path = outbox_path(config_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except FileNotFoundError:
        return []
    found = []
    for table in data.values() if isinstance(data, dict) else []:
        for document in table.values() if isinstance(table, dict) else []:
            if isinstance(document, dict) and "event" in document and "uuid" in document:
                found.append(document)
    return found


# -- a Socket Mode server ----------------------------------------------------------------------


class SocketModeStandIn:
    """The WebSocket end of Slack's Socket Mode on 127.0.0.1: says hello to each
    connection, sends what a test asks, and records every frame the bot sends."""

    def __init__(self) -> None:
        self._connections: list[ServerConnection] = []
        self._frames: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._server: Server = serve(self._handle, "127.0.0.1", 0, close_timeout=1)
        self.port: int = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=test-ticket&app_id=A0TELEMETRY"

    def _handle(self, connection: ServerConnection) -> None:
        with self._changed:
            self._connections.append(connection)
            self._changed.notify_all()
        hello = {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "local-stand-in", "approximate_connection_time": 3600},
            "connection_info": {"app_id": "A0TELEMETRY"},
        }
        connection.send(json.dumps(hello))
        while not self._closing.is_set():
            try:
                raw = connection.recv(timeout=0.2)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            try:
                frame = json.loads(raw)
            except ValueError:
                frame = {"unparsed": raw}
            with self._changed:
                self._frames.append(frame if isinstance(frame, dict) else {"unparsed": raw})
                self._changed.notify_all()

    def wait_for_connection(self, timeout: float = WAIT) -> ServerConnection | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._connections:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
            return self._connections[-1]

    def frames(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._frames)

    def wait_for_frame(
        self, condition: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [frame for frame in self._frames if condition(frame)]
                if found:
                    return found[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._thread.join(5)

    def __enter__(self) -> SocketModeStandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def interrupt(bot: BotProcess) -> Callable[[], None]:
    return lambda: bot.signal(signal.SIGINT)


def terminate(bot: BotProcess) -> Callable[[], None]:
    return lambda: bot.signal(signal.SIGTERM)
