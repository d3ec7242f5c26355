"""The processes the bench starts: each runs from the repo root with ``-m``, logs its stderr
to the work folder, and is watched for its exit by its pid.

Each is the tests' own ``tests.support.processes.Process``: its exit is timed by a thread
blocked in ``os.waitid(..., WEXITED | WNOWAIT)`` on the pid, which wakes the moment the
kernel reports the process gone (``Popen.wait(timeout)`` polls with growing sleeps).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from bench.common import log
from tests.support.capture import CaptureServer
from tests.support.environment import PYTHON, REPO
from tests.support.processes import Process

REAP_SECONDS = 10.0


class BenchProcess(Process):
    """A bench subprocess (``python ARGV`` from the repo root), its stdout lines collected
    as they come, its stderr in ``LOGS/NAME.stderr.log``."""

    registry: ClassVar[list[BenchProcess]] = []  # every process started, to kill at the end

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], logs: Path) -> None:
        super().__init__(
            [PYTHON, *argv],
            env=env,
            cwd=REPO,
            name=name,
            stderr_path=logs / f"{name}.stderr.log",
        )
        self.signalled_at: float | None = None
        BenchProcess.registry.append(self)

    # -- output ----------------------------------------------------------------------------

    def wait_line(self, prefix: str, timeout: float, skip: int = 0) -> str | None:
        """The first stdout line starting with ``prefix`` after the first ``skip`` lines."""
        return self.wait_for_line(lambda line: line.startswith(prefix), timeout, start=skip)

    def seen_at(self, prefix: str) -> float | None:
        """When the first stdout line starting with ``prefix`` came (monotonic)."""
        return next((seen for seen, line in self.timed_lines() if line.startswith(prefix)), None)

    def ask(self, command: str, answer: str, timeout: float = 30.0) -> Any:  # type: ignore[override]
        """Send a command line; the JSON after ``answer`` in the line that answers it."""
        skip = len(self.lines())
        self.send_line(command)
        line = self.wait_line(answer + " ", timeout, skip)
        if line is None:
            raise RuntimeError(f"{self.name} did not answer {command!r}:\n{self.stderr_tail()}")
        return json.loads(line.split(" ", 1)[1])

    def stderr_tail(self, count: int = 20) -> str:
        try:
            assert self.stderr_path is not None
            return "\n".join(self.stderr_path.read_text().splitlines()[-count:])
        except OSError:
            return ""

    # -- ending ----------------------------------------------------------------------------

    def terminate(self) -> None:
        self.signalled_at = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)

    def close_stdin(self) -> None:
        self.signalled_at = time.monotonic()
        super().close_stdin()

    def seconds_to_exit(self, cap: float, since: float | None = None) -> float | None:
        """Seconds from ``since`` (default: the signal or EOF) to the exit; None when it was
        killed ``cap`` seconds after it."""
        began = self.signalled_at if since is None else since
        assert began is not None, "no signal sent"
        if not self.wait_gone(began + cap - time.monotonic()):
            self.stop()
            return None
        assert self.exited_at is not None
        self.wait_exit(REAP_SECONDS)
        return self.exited_at - began

    def sigterm_to_exit(self, cap: float) -> float | None:
        self.terminate()
        return self.seconds_to_exit(cap)

    def end(self, timeout: float = REAP_SECONDS) -> None:
        """End it the gentle way (EOF), then by its pid."""
        if self.poll() is None:
            super().close_stdin()
            if not self.wait_gone(timeout):
                log(f"{self.name} did not end on EOF: killed")
        self.stop()


class BotHost(BenchProcess):
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
        found = []
        for seen, line in self.timed_lines():
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
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"{self.name}: no VmRSS")


def cli(name: str, argv: Sequence[str], env: dict[str, str], logs: Path) -> BenchProcess:
    """``python -m slackonos_telemetry ARGV``, under the bench's lifetime cap."""
    return BenchProcess(name, ["-m", "bench.hosts.capped", "slackonos_telemetry", *argv], env, logs)


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
    process = BenchProcess(name, argv, env, logs)
    process.close_stdin()
    code = process.wait_exit(timeout)
    lines = process.lines()
    if code is None:
        process.stop()
    if code != 0 or not lines:
        raise RuntimeError(f"{name} failed ({code}):\n{process.stderr_tail(40)}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def kill_all() -> None:
    for process in BenchProcess.registry:
        process.stop()
