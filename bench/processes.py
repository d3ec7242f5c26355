"""The processes the bench starts: each runs from the repo root with ``-m``, logs its stderr
to the work folder, and is watched for its exit by its pid.

An exit is timed by a thread blocked in ``os.waitid(..., WEXITED | WNOWAIT)`` on the
pid: it wakes the moment the kernel reports the process gone, and leaves it to be
reaped as usual. (``Popen.wait(timeout)`` polls with growing sleeps.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from bench.common import PYTHON, REPO, log
from tests.support.capture import CaptureServer

REAP_SECONDS = 10.0


class ExitWatch:
    """When a child process ended (monotonic), seen by a thread blocked on its pid."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.exited_at: float | None = None
        self._ended = threading.Event()
        threading.Thread(target=self._watch, name=f"exit-{pid}", daemon=True).start()

    def _watch(self) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        self.exited_at = time.monotonic()
        self._ended.set()

    def wait(self, timeout: float) -> bool:
        return self._ended.wait(max(0.0, timeout))


class Process:
    """A bench subprocess with its stdout lines collected as they come."""

    registry: ClassVar[list[Process]] = []  # every process started, to kill at the end

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        logs.mkdir(parents=True, exist_ok=True)
        self.stderr_path = logs / f"{name}.stderr.log"
        self.lines: list[tuple[float, str]] = []
        self.signalled_at: float | None = None
        self._changed = threading.Condition()
        with open(self.stderr_path, "ab") as stderr:
            self.proc = subprocess.Popen(
                [PYTHON, *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=REPO,
                env=env,
            )
        self.started_at = time.monotonic()
        self.exit = ExitWatch(self.proc.pid)
        Process.registry.append(self)
        self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._changed:
                self.lines.append((time.monotonic(), line))
                self._changed.notify_all()
        with self._changed:
            self.lines.append((time.monotonic(), "EOF"))
            self._changed.notify_all()

    # -- output ----------------------------------------------------------------------------

    def wait_line(self, prefix: str, timeout: float, skip: int = 0) -> str | None:
        """The first stdout line starting with ``prefix`` after the first ``skip`` lines."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for _, line in self.lines[skip:]:
                    if line.startswith(prefix):
                        return line
                    if line == "EOF":
                        return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def seen_at(self, prefix: str) -> float | None:
        with self._changed:
            return next((seen for seen, line in self.lines if line.startswith(prefix)), None)

    def ask(self, command: str, answer: str, timeout: float = 30.0) -> Any:
        """Send a command line; the JSON after ``answer`` in the line that answers it."""
        with self._changed:
            skip = len(self.lines)
        self.send(command)
        line = self.wait_line(answer + " ", timeout, skip)
        if line is None:
            raise RuntimeError(f"{self.name} did not answer {command!r}:\n{self.stderr_tail()}")
        return json.loads(line.split(" ", 1)[1])

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def stderr_tail(self, count: int = 20) -> str:
        try:
            return "\n".join(self.stderr_path.read_text().splitlines()[-count:])
        except OSError:
            return ""

    # -- ending ----------------------------------------------------------------------------

    def terminate(self) -> None:
        self.signalled_at = time.monotonic()
        os.kill(self.proc.pid, signal.SIGTERM)

    def close_stdin(self) -> None:
        self.signalled_at = time.monotonic()
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def seconds_to_exit(self, cap: float, since: float | None = None) -> float | None:
        """Seconds from ``since`` (default: the signal or EOF) to the exit; None when it was
        killed ``cap`` seconds after it."""
        began = self.signalled_at if since is None else since
        assert began is not None, "no signal sent"
        if not self.exit.wait(began + cap - time.monotonic()):
            self.kill()
            return None
        assert self.exit.exited_at is not None
        self.reap()
        return self.exit.exited_at - began

    def sigterm_to_exit(self, cap: float) -> float | None:
        self.terminate()
        return self.seconds_to_exit(cap)

    def reap(self) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(REAP_SECONDS)
        self._reader.join(5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()
        self.reap()

    def stop(self, timeout: float = REAP_SECONDS) -> None:
        """End it the gentle way (EOF), then by its pid."""
        if self.proc.poll() is None:
            self.close_stdin()
            if not self.exit.wait(timeout):
                log(f"{self.name} did not end on EOF: killed")
        self.kill()

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()


class BotHost(Process):
    """``bench.hosts.bot``: a Bolt bot with our plugin, the plain SDK, or neither."""

    def __init__(
        self,
        name: str,
        kind: str,
        exit_style: str,
        config: Path,
        slack_url: str,
        env: dict[str, str],
        logs: Path,
        extra: Sequence[str] = (),
    ) -> None:
        self.kind = kind
        self.exit_style = exit_style
        self.config = config
        config.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            "-m",
            "bench.hosts.bot",
            "--kind",
            kind,
            "--exit-style",
            exit_style,
            "--config",
            str(config),
            "--slack-url",
            slack_url,
            *extra,
        ]
        super().__init__(name, argv, env, logs)

    def ready(self, timeout: float = 60.0) -> float:
        """When the host said READY (monotonic), waiting for it if need be."""
        if self.wait_line("READY", timeout) is None:
            raise RuntimeError(f"{self.name} did not start:\n{self.stderr_tail()}")
        seen = self.seen_at("READY")
        assert seen is not None
        return seen

    def made(self) -> list[tuple[float, str, str]]:
        """(when seen, uuid, event name) of every event the host made."""
        with self._changed:
            lines = list(self.lines)
        found = []
        for seen, line in lines:
            words = line.split()
            if len(words) == 3 and words[0] == "MADE":
                found.append((seen, words[1], words[2]))
        return found

    def made_uuid(self, event: str) -> str | None:
        return next((uuid for _, uuid, name in self.made() if name == event), None)

    def cpu_seconds(self) -> float:
        report = self.ask("cpu", "CPU")
        return float(report["process"]) + float(report["children"])

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"{self.name}: no VmRSS")


def cli(name: str, argv: Sequence[str], env: dict[str, str], logs: Path) -> Process:
    """``python -m slackonos_telemetry ARGV``, under the bench's lifetime cap."""
    return Process(name, ["-m", "bench.hosts.capped", "slackonos_telemetry", *argv], env, logs)


def received_uuids(server: CaptureServer) -> set[str]:
    return {str(event.get("uuid")) for event in server.events}


def delivered(host: BotHost, server: CaptureServer, event: str) -> bool:
    made = host.made_uuid(event)
    return made is not None and made in received_uuids(server)


def wait_started(
    hosts: Iterable[BotHost], servers: dict[str, CaptureServer], timeout: float
) -> None:
    """Every host READY and, for those named in ``servers``, its startup event received."""
    deadline = time.monotonic() + timeout
    hosts = list(hosts)
    for host in hosts:
        host.ready(max(0.0, deadline - time.monotonic()))
    for host in hosts:
        server = servers.get(host.name)
        if server is None:
            continue

        def arrived(found: CaptureServer, host: BotHost = host) -> bool:
            return delivered(host, found, "startup")

        if not server.wait_for(arrived, max(0.0, deadline - time.monotonic())):
            raise RuntimeError(f"{host.name}: startup event never arrived\n{host.stderr_tail()}")


def run_json(
    name: str, argv: Sequence[str], env: dict[str, str], logs: Path, timeout: float = 120.0
) -> dict[str, Any]:
    """Run a one-shot bench process to its end; the JSON of its last stdout line."""
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.stderr.log", "ab") as stderr:
        completed = subprocess.run(
            [PYTHON, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO,
            env=env,
            timeout=timeout,
            check=False,
        )
    lines = completed.stdout.decode().strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = (logs / f"{name}.stderr.log").read_text()[-2000:]
        raise RuntimeError(f"{name} failed ({completed.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def kill_all() -> None:
    for process in Process.registry:
        process.kill()
