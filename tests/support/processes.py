"""Programs run as real processes, for the tests and the bench: one wrapper, ``Process``.

Its output (stdout and stderr, or a pseudo-terminal) is read by threads as it comes:
each line kept with the moment it arrived, waited for with ``waiting.wait_until``. Its
end is seen by a thread blocked in ``os.waitid(..., WEXITED | WNOWAIT)`` on its pid,
which wakes the moment the kernel reports it gone (``exited_at``) and leaves the reaping
to ``Popen``. Every wait is bounded; ``stop()`` (the context managers call it, also when
a test fails) kills what is still running, its process group with ``group=True``, and
reaps it.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import pty
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.support.environment import PYTHON, clean_environ
from tests.support.waiting import wait_until

WAIT = 15.0  # upper bound of any single wait for a process to do something
REAP = 20.0  # upper bound for a process to end once told to
# A TELEMETRY_SHUTDOWN_TIMEOUT for tests about what is delivered, not about how fast.
GENEROUS_SHUTDOWN = "10"
STDOUT, STDERR = "stdout", "stderr"

# Run in the child before the program when it gets a terminal: make the pseudo-terminal
# its controlling terminal (the child is a session leader), so that ^C typed at it is
# the kernel's SIGINT, as in a real terminal; then become the program (same pid).
_BECOME_CONTROLLING_TERMINAL = (
    "import fcntl, os, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


class _Stream:
    """One output stream: its text so far, its complete lines with when each came."""

    def __init__(self, terminal: bool) -> None:
        self.terminal = terminal
        self.text = ""
        self.lines: list[tuple[float, str]] = []
        self.ended = False
        self._partial = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._carriage = False  # a terminal's "\r" at a chunk's end, maybe before "\n"

    def feed(self, chunk: bytes, now: float) -> None:
        text = self._decoder.decode(chunk, final=not chunk)
        if self.terminal:  # a terminal ends its lines with \r\n
            if self._carriage:
                text = "\r" + text
            self._carriage = text.endswith("\r") and bool(chunk)
            if self._carriage:
                text = text[:-1]
            text = text.replace("\r\n", "\n")
        self.text += text
        pieces = (self._partial + text).split("\n")
        self._partial = pieces.pop()
        self.lines.extend((now, line) for line in pieces)
        if not chunk:
            if self._partial:
                self.lines.append((now, self._partial))
                self._partial = ""
            self.ended = True


class Process:
    """``command`` running, with its output read as it comes.

    - ``env``: the whole environment (the context managers start from ``clean_environ``).
    - ``stderr_path``: stderr appended to that file instead of read (the bench's logs).
    - ``terminal``: stdin and stdout a pseudo-terminal that is the process's controlling
      terminal (``type`` writes to it; its text keeps prompts that end no line).
    - ``group``: the process leads a process group (it makes one itself, or
      ``new_session``); ``stop()`` kills the whole group.
    - ``user``: run as that uid (and gid), with no supplementary groups.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | None = None,
        name: str | None = None,
        stderr_path: Path | None = None,
        terminal: bool = False,
        group: bool = False,
        new_session: bool = False,
        user: int | None = None,
    ) -> None:
        self.command = list(command)
        self.name = name or Path(self.command[0]).name
        self.group = group
        self.terminal = terminal
        self.stderr_path = stderr_path
        self._changed = threading.Condition()
        self._streams = {STDOUT: _Stream(terminal), STDERR: _Stream(False)}
        self._master: int | None = None
        self.exited_at: float | None = None
        self._exited = threading.Event()
        options: dict[str, Any] = {}
        if user is not None:
            options = {"user": user, "group": user, "extra_groups": []}
        slave: int | None = None
        stderr_file: IO[bytes] | None = None
        if terminal:
            self._master, slave = pty.openpty()
            argv = [PYTHON, "-c", _BECOME_CONTROLLING_TERMINAL, *self.command]
            stdin: int | IO[bytes] = slave
            stdout: int | IO[bytes] = slave
            new_session = True
        else:
            argv, stdin, stdout = self.command, subprocess.PIPE, subprocess.PIPE
        if stderr_path is not None:
            stderr_path.parent.mkdir(parents=True, exist_ok=True)
            stderr_file = open(stderr_path, "ab")  # noqa: SIM115 (closed once handed over)
        try:
            self.proc = subprocess.Popen(
                argv,
                env=dict(env),
                cwd=cwd,
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE if stderr_file is None else stderr_file,
                start_new_session=new_session,
                **options,
            )
        except BaseException:
            if self._master is not None:
                os.close(self._master)
            raise
        finally:
            if slave is not None:
                os.close(slave)
            if stderr_file is not None:
                stderr_file.close()
        self.started_at = time.monotonic()
        self._readers: list[threading.Thread] = []
        if self._master is not None:
            self._read_in_thread(STDOUT, self._read_terminal)
        else:
            assert self.proc.stdout is not None
            self._read_in_thread(STDOUT, self._read_pipe, self.proc.stdout)
        if self.proc.stderr is not None:
            self._read_in_thread(STDERR, self._read_pipe, self.proc.stderr)
        else:
            self._streams[STDERR].ended = True
        threading.Thread(target=self._watch_exit, name=f"exit-{self.pid}", daemon=True).start()

    # -- reading -------------------------------------------------------------------------

    def _read_in_thread(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(
            target=target, args=(name, *args), name=f"read-{name}-{self.pid}", daemon=True
        )
        self._readers.append(thread)
        thread.start()

    def _feed(self, name: str, chunk: bytes) -> None:
        with self._changed:
            self._streams[name].feed(chunk, time.monotonic())
            self._changed.notify_all()

    def _read_pipe(self, name: str, stream: IO[bytes]) -> None:
        chunk = b"x"
        with contextlib.suppress(OSError, ValueError):
            while chunk:
                chunk = os.read(stream.fileno(), 65536)
                if chunk:
                    self._feed(name, chunk)
        self._feed(name, b"")

    def _read_terminal(self, name: str) -> None:
        assert self._master is not None
        while True:
            try:
                ready = select.select([self._master], [], [], 0.1)[0]
                # EIO: every holder of the terminal's other end is gone.
                chunk = os.read(self._master, 65536) if ready else None
            except (OSError, ValueError):
                chunk = b""
            if chunk is None:
                if self.proc.poll() is not None and self._exited.is_set():
                    chunk = b""  # (a grandchild may hold the terminal: not waited for)
                else:
                    continue
            self._feed(name, chunk)
            if not chunk:
                return

    def _watch_exit(self) -> None:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        self.exited_at = time.monotonic()
        self._exited.set()
        with self._changed:
            self._changed.notify_all()

    # -- output ----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lines(self, stream: str = STDOUT) -> list[str]:
        """The complete lines so far."""
        with self._changed:
            return [line for _, line in self._streams[stream].lines]

    def timed_lines(self, stream: str = STDOUT) -> list[tuple[float, str]]:
        """The complete lines so far, each with when it came (monotonic)."""
        with self._changed:
            return list(self._streams[stream].lines)

    def text(self, stream: str = STDOUT) -> str:
        """Everything read so far, the line in progress included (a prompt)."""
        with self._changed:
            return self._streams[stream].text

    @property
    def stdout(self) -> str:
        return "\n".join(self.lines(STDOUT))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines(STDERR))

    def ended(self, stream: str = STDOUT) -> bool:
        """Whether ``stream`` reached its end: no more output will come."""
        with self._changed:
            return self._streams[stream].ended

    def wait_for_output(
        self,
        condition: Callable[[str], bool],
        timeout: float = WAIT,
        start: int = 0,
        *,
        stream: str = STDOUT,
    ) -> bool:
        """Until ``condition`` holds for the complete lines from line ``start`` on, joined
        (bounded); False also when the stream ended without it."""
        found = self._streams[stream]

        def joined() -> str:
            return "\n".join(line for _, line in found.lines[start:])

        wait_until(lambda: found.ended or condition(joined()), timeout, changed=self._changed)
        with self._changed:
            return condition(joined())

    def wait_for_line(
        self,
        predicate: Callable[[str], bool],
        timeout: float = WAIT,
        start: int = 0,
        *,
        stream: str = STDOUT,
    ) -> str | None:
        """The first complete line from line ``start`` on for which ``predicate`` holds
        (bounded); None when none came in time or the stream ended."""
        found = self._streams[stream]
        seen = [start]
        line: list[str] = []

        def matched() -> bool:
            for _, text in found.lines[seen[0] :]:
                if predicate(text):
                    line.append(text)
                    return True
            seen[0] = len(found.lines)
            return found.ended

        wait_until(matched, timeout, changed=self._changed)
        return line[0] if line else None

    def wait_for_text(
        self, condition: Callable[[str], bool], timeout: float = WAIT, *, stream: str = STDOUT
    ) -> bool:
        """Until ``condition`` holds for everything read so far (a terminal's screen)."""
        found = self._streams[stream]
        wait_until(lambda: found.ended or condition(found.text), timeout, changed=self._changed)
        with self._changed:
            return condition(found.text)

    # -- the hosts' JSON lines -------------------------------------------------------------

    def messages(self, kind: str) -> list[dict[str, Any]]:
        """The stdout lines that are JSON objects with ``"kind": kind`` (the test hosts'
        way of telling what happened)."""
        found = []
        for line in self.lines(STDOUT):
            if not line.startswith("{"):
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("kind") == kind:
                found.append(message)
        return found

    def wait_for_messages(
        self, kind: str, count: int = 1, timeout: float = WAIT
    ) -> list[dict[str, Any]]:
        """At least ``count`` messages of ``kind`` (asserted, bounded)."""
        self.wait_for_output(lambda _out: len(self.messages(kind)) >= count, timeout)
        found = self.messages(kind)
        assert len(found) >= count, f"no {count} {kind!r} line(s)\n{self.describe()}"
        return found

    def ask(self, command: str, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """Send ``command``; the next message of ``kind``, which answers it (asserted)."""
        before = len(self.messages(kind))
        self.send_line(command)
        self.wait_for_output(lambda _out: len(self.messages(kind)) > before, timeout)
        found = self.messages(kind)
        assert len(found) > before, f"no answer {kind!r} to {command!r}\n{self.describe()}"
        return found[before]

    def describe(self) -> str:
        stderr = f"(in {self.stderr_path})" if self.stderr_path else self.stderr
        return (
            f"command: {self.command}\nexit code: {self.proc.poll()}\n"
            f"--- stdout ---\n{self.text()}\n--- stderr ---\n{stderr}"
        )

    # -- input and control -----------------------------------------------------------------

    def send_line(self, text: str) -> int:
        """Type a line; returns the stdout line count before it, for ``start``."""
        start = len(self.lines(STDOUT))
        self.type(text + "\n")
        return start

    def type(self, text: str) -> None:
        """Write ``text`` to the process's input (the terminal, when it has one)."""
        data = text.encode("utf-8")
        if self._master is not None:
            os.write(self._master, data)
            return
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def poll(self) -> int | None:
        return self.proc.poll()

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def wait_gone(self, timeout: float) -> bool:
        """Until the kernel reports the process ended (not reaping it); whether it did."""
        return self._exited.wait(max(0.0, timeout))

    def wait_exit(self, timeout: float = REAP) -> int | None:
        """The exit code once the process ended (bounded), its output then read to the end;
        None if it still runs."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._exited.wait(5)
        for reader in self._readers:
            reader.join(5)
        return code

    def timed_exit(
        self, action: Callable[[], None] | int, timeout: float = REAP
    ) -> tuple[int, float]:
        """Run ``action`` (closing stdin, say), or send that signal; the exit code and the
        seconds from then to the exit (asserted to come within ``timeout``)."""
        started = time.monotonic()
        if callable(action):
            action()
        else:
            self.signal(action)
        code = self.wait_exit(timeout)
        assert code is not None, f"still running {timeout:g} s later\n{self.describe()}"
        ended = self.exited_at if self.exited_at is not None else time.monotonic()
        return code, ended - started

    def kill_group(self) -> None:
        """SIGKILL to the process group this process leads (nothing when there is none)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Kill (if still running; its group too with ``group``), reap, close. Killed
        before its stdin closes: an end of input is something a process may act on."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()
        if self.group:
            self.kill_group()
        self.close_stdin()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(REAP)
        self._exited.wait(5)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = None


@contextlib.contextmanager
def started(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    **options: Any,
) -> Iterator[Process]:
    """``command`` running in a clean environment plus ``env``; stopped on the way out."""
    process = Process(command, env=clean_environ(env), cwd=cwd, **options)
    try:
        yield process
    finally:
        process.stop()


def python_module(module: str, *args: str) -> list[str]:
    """The command of ``python -m MODULE ARGS`` with this interpreter."""
    return [PYTHON, "-m", module, *args]


# -- run to the end --------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """A process run to its end: exit code, output, wall time, its own peak memory."""

    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_bytes: int

    def error_line(self) -> str:
        """The one line on stderr (asserted: one line, no traceback)."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1 and "Traceback" not in self.stderr, self.stderr
        return lines[0]


def run_measured(
    command: Sequence[str], *, env: Mapping[str, str] | None = None, limit: float = 60.0
) -> Finished:
    """``command`` in a clean environment plus ``env``, run to its end (killed after
    ``limit`` s), reaped with ``os.wait4`` for its own rusage (``ru_maxrss``: this
    child's peak, not the largest of all the children this process had)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started_at = time.monotonic()
        process = subprocess.Popen(
            list(command), env=clean_environ(env), stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        reaped: list[tuple[int, Any]] = []  # (wait status, rusage)

        def ended() -> bool:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                reaped.append((status, usage))
            return bool(pid)

        try:
            if not wait_until(ended, limit):
                process.kill()
                _, status, usage = os.wait4(process.pid, 0)
                reaped.append((status, usage))
        except BaseException:
            if not reaped:
                process.kill()
                os.wait4(process.pid, 0)
            raise
        seconds = time.monotonic() - started_at
        status, usage = reaped[0]
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
        out.seek(0)
        err.seek(0)
        return Finished(process.returncode, out.read(), err.read(), seconds, usage.ru_maxrss * 1024)


# -- the network -----------------------------------------------------------------------------


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listened on a moment ago: a connection to it is
    refused at once (another process may take it since: a test that binds it retries)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def wait_for_port(
    port: int, process: Process, host: str = "127.0.0.1", timeout: float = WAIT
) -> None:
    """Until ``host:port`` accepts a connection (bounded); fails early if ``process``
    ended."""
    listening = wait_until(
        lambda: connects(host, port) or process.poll() is not None, timeout, interval=0.05
    )
    assert process.poll() is None, f"ended before listening\n{process.describe()}"
    assert listening, f"nothing listens on {host}:{port}\n{process.describe()}"
