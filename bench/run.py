"""The benchmark of slackonos_telemetry: our plugin against the plain posthog SDK.

Run from the repo root: ``.venv/bin/python bench/run.py [--quick] [--json PATH]``.
It prints one markdown table: figure | target | ours | plain SDK | pass.

Figures (one function each below):
 1. SIGTERM to exit, healthy endpoint, shutdown event delivered (<= 100 ms)
 2. SIGTERM to exit, endpoint refusing connections (<= deadline + 0.25 s)
 3. SIGTERM to exit, endpoint accepting and never answering (<= deadline + 0.25 s)
 4. time added to the host's start, enabled / disabled; the host's first commands
 5. CPU used by an idle bot over 60 s (<= 20 ms)
 6. events lost over an outage with 3 restarts (0, and 0 duplicates)
 7. Slack command latency over HTTP, setconfig and status (p99 <= 25 ms); status build

Hosts run with compiled bytecode cached (in the work folder), as an installed
wheel has it; row 4a' shows the start cost without it. Exit status: 0 when every
figure meets its target, 1 when one misses.

Only 127.0.0.1 is ever contacted. Every host is a subprocess that ends by itself
(EOF on stdin, a lifetime cap) and is killed by its pid if it is still there at
the end; every server is closed before the script returns.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import hmac
import http.client
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from slackonos_telemetry.run.local_slack import LocalSlack  # noqa: E402
from tests.support.capture import (  # noqa: E402
    ACCEPT,
    ERROR_500,
    HANG,
    REFUSE,
    CaptureServer,
)

PYTHON = sys.executable
HOSTS = Path(__file__).resolve().parent / "hosts"
BOT = HOSTS / "bot.py"
STARTUP = HOSTS / "startup.py"
ENV_PREFIXES = ("TELEMETRY_", "SLACKONOS_", "SLACK_", "POSTHOG_")
API_KEY = "phc_bench"
SIGNING_SECRET = "bench-signing-secret"
ADMIN_CHANNEL_ID = "C0ADMIN01"
DEADLINE = 2.0  # TELEMETRY_SHUTDOWN_TIMEOUT's default
HOST_LIFETIME = 420.0
MIN_RUN_SECONDS = 1.0  # figure 6: a host lives at least this long after READY


@dataclass(frozen=True)
class Plan:
    quick: bool
    healthy_runs: int  # figure 1: hosts of each kind, killed one by one
    outage_hosts: int  # figures 2 and 3: hosts of each kind
    plain_hang_cap: float  # figure 3: the plain SDK is killed after this long
    start_runs: int  # figure 4: fresh processes per variant
    spread_runs: int  # figure 4d: processes per variant
    idle_window: float  # figure 5: seconds measured, scaled to 60
    outage: float  # figure 6: seconds the endpoint is down
    recovery_cap: float  # figure 6: longest wait for the outbox to empty after it
    slack_requests: int  # figure 7: requests of each command
    status_builds: int  # figure 7: in-process status builds

    @staticmethod
    def make(quick: bool) -> Plan:
        if quick:
            return Plan(True, 3, 2, 20.0, 5, 2, 15.0, 16.0, 20.0, 200, 200)
        return Plan(False, 7, 3, 90.0, 12, 3, 60.0, 30.0, 30.0, 500, 500)


@dataclass
class Row:
    key: str
    figure: str
    target: str
    ours: str
    plain: str
    passed: bool | None
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "FAIL"


# -- small helpers -----------------------------------------------------------------


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(ENV_PREFIXES) and name != "DO_NOT_TRACK"
    }
    env["BENCH_HOST_LIFETIME"] = str(HOST_LIFETIME)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def use_bytecode_cache(root: Path) -> None:
    """Hosts run with compiled bytecode cached, as an installed wheel has it.

    This machine sets PYTHONDONTWRITEBYTECODE=1 and the package is an editable
    install, so without this every host would compile the package from source
    at each start. The cache goes to the work folder, never into the repo.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(root / "pycache")


def without_bytecode_cache(env: dict[str, str]) -> dict[str, str]:
    """``env`` as this machine runs Python: the package compiled at every start."""
    changed = {name: value for name, value in env.items() if name != "PYTHONPYCACHEPREFIX"}
    changed["PYTHONDONTWRITEBYTECODE"] = "1"
    return changed


def telemetry_env(server: CaptureServer, **extra: str) -> dict[str, str]:
    return clean_env({"TELEMETRY_HOST": server.url, "TELEMETRY_API_KEY": API_KEY, **extra})


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def median(values: Iterable[float]) -> float:
    found = list(values)
    return statistics.median(found) if found else math.nan


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.2f} s"


def received_uuids(server: CaptureServer) -> list[str]:
    return [str(event.get("uuid")) for event in server.events]


def outbox_uuids(config: Path) -> set[str]:
    path = config.with_name("telemetry-outbox.json")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return set()
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, dict):
        return set()
    return {str(event.get("uuid")) for event in events.values() if isinstance(event, dict)}


# -- hosts ---------------------------------------------------------------------------


class Host:
    """bench/hosts/bot.py as a subprocess, with its stdout lines collected."""

    registry: list[Host] = []  # noqa: RUF012 - every host started, to kill at the end

    def __init__(
        self,
        name: str,
        kind: str,
        workdir: Path,
        env: dict[str, str],
        slack_url: str,
        *,
        config: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.kind = kind
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = config or workdir / "config" / "config.json"
        self.lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._stderr: TextIO = open(workdir / f"{name}.stderr.log", "a")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                PYTHON,
                str(BOT),
                "--kind",
                kind,
                "--config",
                str(self.config),
                "--slack-url",
                slack_url,
                "--signing-secret",
                SIGNING_SECRET,
                *extra_args,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=workdir,
            env=env,
        )
        self.stderr_path = workdir / f"{name}.stderr.log"
        Host.registry.append(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
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

    def wait_line(self, prefix: str, timeout: float, skip: int = 0) -> str | None:
        """The first line starting with ``prefix`` after the first ``skip`` lines."""
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

    def ready_at(self, timeout: float) -> float:
        """When the host said READY (monotonic), waiting for it if need be."""
        if self.wait_line("READY", timeout) is None:
            raise RuntimeError(f"{self.name} did not start:\n{self.stderr_tail()}")
        with self._changed:
            return next(seen for seen, line in self.lines if line == "READY")

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

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def ask(self, command: str, answer: str, timeout: float = 30.0) -> str | None:
        with self._changed:
            skip = len(self.lines)
        self.send(command)
        return self.wait_line(answer, timeout, skip)

    def cpu_seconds(self) -> float:
        line = self.ask("cpu", "CPU ")
        if line is None:
            raise RuntimeError(f"{self.name} did not report its CPU time")
        return float(line.split()[1])

    def sigterm_to_exit(self, cap: float) -> float | None:
        """Seconds from SIGTERM to the process's exit; None when killed at ``cap``."""
        began = time.monotonic()
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(cap)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        elapsed = time.monotonic() - began
        self._reader.join(5)
        return elapsed

    def stop(self, timeout: float = 10.0) -> None:
        """End it the gentle way (EOF), then by its pid."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reader.join(5)
        self._stderr.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stderr_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.stderr_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""


def wait_started(
    hosts: Sequence[Host], server_of: dict[str, CaptureServer], timeout: float
) -> None:
    """Every host READY and its startup event received by its server."""
    deadline = time.monotonic() + timeout
    for host in hosts:
        if host.wait_line("READY", max(0.0, deadline - time.monotonic())) is None:
            raise RuntimeError(f"{host.name} did not start:\n{host.stderr_tail()}")
    for host in hosts:
        server = server_of.get(host.name)
        if server is None:
            continue
        while True:
            startup = host.made_uuid("startup")
            if startup is not None and startup in set(received_uuids(server)):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host.name}: startup event never arrived")
            time.sleep(0.05)


def parallel(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# -- figures 1-3: SIGTERM to exit ------------------------------------------------------


def figure_healthy(ours: Sequence[Host], plain: Sequence[Host], server: CaptureServer) -> Row:
    times: dict[str, list[float]] = {"ours": [], "plain": []}
    delivered: dict[str, int] = {"ours": 0, "plain": 0}
    for our_host, plain_host in zip(ours, plain, strict=True):
        for label, host in (("ours", our_host), ("plain", plain_host)):
            elapsed = host.sigterm_to_exit(cap=30.0)
            times[label].append(math.inf if elapsed is None else elapsed)
            shutdown = host.made_uuid("shutdown")
            if shutdown is not None and shutdown in set(received_uuids(server)):
                delivered[label] += 1
    runs = len(ours)
    ours_median = median(times["ours"])
    plain_median = median(times["plain"])
    return Row(
        "sigterm_healthy",
        f"1. SIGTERM to exit, endpoint healthy (median of {runs})",
        "<= 100 ms, shutdown delivered",
        f"{ms(ours_median)} (max {ms(max(times['ours']))}); "
        f"shutdown delivered {delivered['ours']}/{runs}",
        f"{ms(plain_median)} (max {ms(max(times['plain']))}); "
        f"shutdown delivered {delivered['plain']}/{runs}",
        ours_median <= 0.100 and delivered["ours"] == runs,
        {"ours_s": times["ours"], "plain_s": times["plain"], "delivered": delivered},
    )


def kill_all(hosts: Sequence[Host], cap: float) -> list[float | None]:
    return parallel([functools.partial(host.sigterm_to_exit, cap) for host in hosts])


def describe_times(times: Sequence[float | None], cap: float) -> str:
    finished = [value for value in times if value is not None]
    if len(finished) < len(times):
        return f">{cap:.0f} s (still running, killed; {len(finished)}/{len(times)} exited)"
    return f"{secs(median(finished))} (max {secs(max(finished))})"


def figure_outage_exit(
    key: str,
    label: str,
    ours: Sequence[Host],
    plain_times: Sequence[float | None],
    plain_cap: float,
    ours_times: Sequence[float | None],
) -> Row:
    kept = sum(
        1 for host in ours if (host.made_uuid("shutdown") or "") in outbox_uuids(host.config)
    )
    limit = DEADLINE + 0.25
    finished = [value for value in ours_times if value is not None]
    passed = len(finished) == len(ours_times) and max(finished) <= limit
    return Row(
        key,
        f"{label} (median of {len(ours)}; pass on max)",
        f"<= {limit:.2f} s (deadline {DEADLINE:g} s + 0.25)",
        f"{describe_times(ours_times, 30.0)}; shutdown kept in outbox {kept}/{len(ours)}",
        describe_times(plain_times, plain_cap),
        passed,
        {"ours_s": list(ours_times), "plain_s": list(plain_times), "kept_in_outbox": kept},
    )


# -- figure 4: start cost and first commands ----------------------------------------------


def run_startup(
    variant: str,
    workdir: Path,
    server: CaptureServer,
    slack_url: str,
    *args: str,
    bytecode_cache: bool = True,
) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    extra = {"TELEMETRY_ENABLED": "false"} if variant == "disabled" else {}
    env = telemetry_env(server, **extra)
    completed = subprocess.run(
        [
            PYTHON,
            str(STARTUP),
            "--variant",
            variant,
            "--config",
            str(workdir / "config" / "config.json"),
            "--slack-url",
            slack_url,
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env if bytecode_cache else without_bytecode_cache(env),
        timeout=90,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RuntimeError(
            f"startup {variant} failed ({completed.returncode}):\n{completed.stderr}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def warm_bytecode_cache(root: Path, server: CaptureServer, slack_url: str) -> None:
    """One untimed start of each kind, so the first measured ones find bytecode."""
    for variant in ("ours", "plain"):
        run_startup(variant, root / f"warm-{variant}", server, slack_url)


def figure_start(plan: Plan, root: Path, server: CaptureServer, slack_url: str) -> list[Row]:
    variants = ("none", "ours", "disabled", "plain")
    found: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
    for round_index in range(plan.start_runs):
        for variant in variants:
            workdir = root / f"start-{variant}-{round_index}"
            found[variant].append(run_startup(variant, workdir, server, slack_url))
    uncached = [
        run_startup(
            "ours", root / f"start-uncached-{index}", server, slack_url, bytecode_cache=False
        )
        for index in range(plan.spread_runs)
    ]
    spread: dict[str, list[dict[str, Any]]] = {"none": [], "ours": []}
    for round_index in range(plan.spread_runs):
        for variant in spread:
            workdir = root / f"spread-{variant}-{round_index}"
            spread[variant].append(
                run_startup(variant, workdir, server, slack_url, "--spread", "0.35")
            )

    def med(variant: str, key: str) -> float:
        return median(float(result[key]) for result in found[variant])

    def start_cell(variant: str) -> str:
        return (
            f"{med(variant, 'start_ms'):.2f} ms "
            f"(main-thread CPU {med(variant, 'start_cpu_ms'):.2f} ms)"
        )

    enabled, disabled = med("ours", "start_ms"), med("disabled", "start_ms")
    plain_cell = f"{start_cell('plain')}: import posthog + Posthog()"
    first = {variant: med(variant, "commands_total_ms") for variant in variants}
    first_one = {variant: med(variant, "first_command_ms") for variant in variants}
    worst = {
        variant: max(float(result["spread_max_ms"]) for result in results)
        for variant, results in spread.items()
    }
    uncached_ms = median(float(result["start_ms"]) for result in uncached)
    runs = plan.start_runs
    return [
        Row(
            "start_enabled",
            f"4a. Start time added: import + register(app), enabled (median of {runs} processes)",
            "<= 5 ms",
            start_cell("ours"),
            plain_cell,
            enabled <= 5.0,
            {variant: found[variant] for variant in ("ours", "plain")},
        ),
        Row(
            "start_disabled",
            f"4b. Start time added, TELEMETRY_ENABLED=false (median of {runs})",
            "<= 1 ms",
            start_cell("disabled"),
            f"{plain_cell} (no cheaper off switch)",
            disabled <= 1.0,
            {"disabled": found["disabled"]},
        ),
        Row(
            "start_uncached",
            f"4a'. Same as 4a without a bytecode cache (PYTHONDONTWRITEBYTECODE=1, as "
            f"this machine runs; median of {plan.spread_runs})",
            "info",
            f"{uncached_ms:.2f} ms",
            "n/a (site-packages keep their bytecode)",
            None,
            {"ours": uncached},
        ),
        Row(
            "first_commands",
            "4c. Host's first 20 commands right after start (sum, median)",
            "<= no plugin + 5 ms",
            f"{first['ours']:.1f} ms (first one {first_one['ours']:.1f} ms)",
            f"plain SDK {first['plain']:.1f} ms; no plugin {first['none']:.1f} ms "
            f"(first one {first_one['none']:.1f} ms)",
            first["ours"] <= first["none"] + 5.0,
            {"median_total_ms": first, "median_first_ms": first_one},
        ),
        Row(
            "import_window",
            "4d. Worst host command after the first, one every 0.35 s for 2.5 s while the "
            f"tracker imports posthog in the background (max of {plan.spread_runs} processes)",
            "<= 25 ms (the command target)",
            f"{worst['ours']:.1f} ms",
            f"no plugin {worst['none']:.1f} ms",
            worst["ours"] <= 25.0,
            {"worst_ms": worst, "runs": spread},
        ),
    ]


# -- figure 5: idle CPU -----------------------------------------------------------------


class IdleWindow:
    """Reads the idle hosts' CPU time at the window's start and, on a thread of its
    own, exactly at its end, whatever the other figures are doing then."""

    def __init__(self, hosts: dict[str, Host], window: float) -> None:
        self.hosts = hosts
        self.window = window
        self.began = time.monotonic()
        self.before = {label: host.cpu_seconds() for label, host in hosts.items()}
        self.after: dict[str, float] = {}
        self.ended = 0.0
        self._thread = threading.Thread(target=self._close, daemon=True)
        self._thread.start()

    def _close(self) -> None:
        time.sleep(max(0.0, self.began + self.window - time.monotonic()))
        self.after = {label: host.cpu_seconds() for label, host in self.hosts.items()}
        self.ended = time.monotonic()

    def row(self) -> Row:
        self._thread.join(self.window + 60)
        measured = self.ended - self.began
        used = {
            label: (self.after[label] - self.before[label]) * 60.0 / measured
            for label in self.hosts
        }
        scaled = "" if self.window >= 60.0 else f"; {measured:.0f} s measured, scaled to 60 s"
        return Row(
            "idle_cpu",
            f"5. CPU of an idle bot over 60 s (process CPU time{scaled})",
            "<= 20 ms",
            ms(used["ours"]),
            f"plain SDK {ms(used['plain'])}; no plugin {ms(used['none'])}",
            used["ours"] <= 0.020,
            {"cpu_s_per_60s": used, "window_s": measured},
        )


# -- figure 6: events lost over an outage with restarts ------------------------------------


@dataclass
class OutageRun:
    label: str
    kind: str
    server: CaptureServer
    workdir: Path
    env: dict[str, str]
    slack_url: str
    hosts: list[Host] = field(default_factory=list)
    exits: list[float | None] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.workdir / "config" / "config.json"

    def start(self) -> None:
        index = len(self.hosts)
        self.hosts.append(
            Host(
                f"outage-{self.label}-{index}",
                self.kind,
                self.workdir,
                self.env,
                self.slack_url,
                config=self.config,
            )
        )

    def restart(self) -> None:
        """SIGTERM the running host once it is up (and has lived a moment), start the next."""
        current = self.hosts[-1]
        ready = current.ready_at(60.0)
        time.sleep(max(0.0, ready + MIN_RUN_SECONDS - time.monotonic()))
        self.exits.append(current.sigterm_to_exit(cap=30.0))
        self.start()

    def made(self) -> list[tuple[float, str, str]]:
        return [made for host in self.hosts for made in host.made()]

    def missing(self) -> set[str]:
        return {uuid for _, uuid, _ in self.made()} - set(received_uuids(self.server))


def figure_outage(plan: Plan, root: Path, slack_url: str) -> Row:
    servers = {"ours": CaptureServer(REFUSE), "plain": CaptureServer(REFUSE)}
    try:
        runs = [
            OutageRun(
                "ours",
                "ours",
                servers["ours"],
                root / "outage-ours",
                telemetry_env(servers["ours"], TELEMETRY_HEARTBEAT_SECONDS="1"),
                slack_url,
            ),
            OutageRun(
                "plain",
                "plain",
                servers["plain"],
                root / "outage-plain",
                telemetry_env(servers["plain"], BENCH_HEARTBEAT_SECONDS="1"),
                slack_url,
            ),
        ]
        began = time.monotonic()
        for run in runs:
            run.start()

        def schedule(run: OutageRun) -> None:
            # Each kind on its own clock: a slow exit of one never delays the other.
            for restart in (1, 2, 3):
                time.sleep(max(0.0, began + restart * plan.outage / 4 - time.monotonic()))
                run.restart()

        schedules = [threading.Thread(target=schedule, args=(run,)) for run in runs]
        for thread in schedules:
            thread.start()
        time.sleep(max(0.0, began + plan.outage / 2 - time.monotonic()))
        for server in servers.values():  # the second half of the outage answers 500
            server.set_mode(ERROR_500)
        time.sleep(max(0.0, began + plan.outage - time.monotonic()))
        accepted_at = time.monotonic()
        for server in servers.values():
            server.set_mode(ACCEPT)
        for thread in schedules:  # the plain SDK's slow exits may run past the outage
            thread.join(60)
        log(f"figure 6: endpoint back after {accepted_at - began:.1f} s; waiting for the outbox")
        while runs[0].missing() and time.monotonic() - accepted_at < plan.recovery_cap:
            time.sleep(0.2)
        recovered_in = time.monotonic() - accepted_at
        time.sleep(1.0)
        for run in runs:
            run.hosts[-1].ready_at(60.0)
        finals = parallel([functools.partial(run.hosts[-1].sigterm_to_exit, 30.0) for run in runs])
        for run, final in zip(runs, finals, strict=True):
            run.exits.append(final)
        flushed = False
        if runs[0].missing():
            flushed = True
            subprocess.run(
                [PYTHON, "-m", "slackonos_telemetry", "--config", str(runs[0].config), "flush"],
                env=runs[0].env,
                cwd=runs[0].workdir,
                capture_output=True,
                timeout=60,
                check=False,
            )
        numbers: dict[str, Any] = {"recovered_in_s": recovered_in, "flush_needed": flushed}
        cells: dict[str, str] = {}
        for run in runs:
            made = run.made()
            made_ids = {uuid for _, uuid, _ in made}
            during = {uuid for seen, uuid, _ in made if seen < accepted_at}
            got = [uuid for uuid in received_uuids(run.server) if uuid in made_ids]
            lost = made_ids - set(got)
            duplicates = len(got) - len(set(got))
            numbers[run.label] = {
                "made": len(made_ids),
                "made_during_outage": len(during),
                "lost": len(lost),
                "lost_made_during_outage": len(lost & during),
                "duplicates": duplicates,
                "restarts": len(run.hosts) - 1,
                "exit_s": run.exits,
            }
            cells[run.label] = (
                f"{len(lost)} lost of {len(made_ids)} made "
                f"({len(lost & during)} of {len(during)} made in the outage); "
                f"{duplicates} duplicates"
            )
        ours = numbers["ours"]
        cells["ours"] += f"; outbox empty {recovered_in:.1f} s after recovery"
        if flushed:
            cells["ours"] += " (needed `flush`)"
        return Row(
            "outage_loss",
            f"6. Events lost, {plan.outage:g} s outage (refuse, then 500), 3 restarts, "
            "heartbeat 1 s",
            "0 lost, 0 duplicates",
            cells["ours"],
            cells["plain"],
            ours["lost"] == 0 and ours["duplicates"] == 0,
            numbers,
        )
    finally:
        for server in servers.values():
            server.close()


# -- figure 7: Slack command latency -----------------------------------------------------


def signed_post(url: str, text: str, ts: str) -> Callable[[], int]:
    """A ready-to-send signed Events API request; returns the HTTP status when called."""
    body = json.dumps(
        {
            "token": "bench",
            "team_id": "T0LOCAL01",
            "api_app_id": "A0BENCH01",
            "type": "event_callback",
            "event_id": f"Ev{ts.replace('.', '')}",
            "event_time": int(time.time()),
            "event": {
                "type": "message",
                "channel": ADMIN_CHANNEL_ID,
                "channel_type": "channel",
                "user": "U0ADMIN01",
                "text": text,
                "ts": ts,
            },
        }
    )
    stamp = str(int(time.time()))
    digest = hmac.new(
        SIGNING_SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256
    ).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }
    parts = urlsplit(url)

    def send() -> int:
        connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=10
        )
        try:
            connection.request("POST", parts.path, body=body.encode(), headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    return send


class SlackClock:
    """Sends commands and times each until the stand-in receives the answer."""

    def __init__(self, slack: LocalSlack, url: str) -> None:
        self.slack = slack
        self.url = url
        self.sequence = 0

    def command(self, text: str) -> float:
        self.sequence += 1
        ts = f"{1_700_000_000 + self.sequence}.{self.sequence:06d}"
        send = signed_post(self.url, text, ts)
        before = len(self.slack.calls("chat.postMessage"))
        sent_at = time.monotonic()
        status = send()
        calls = self.slack.wait_for_calls("chat.postMessage", before + 1, timeout=10)
        if status != 200 or len(calls) <= before:
            return math.inf
        return calls[before].received_at - sent_at


def figure_slack(plan: Plan, root: Path) -> list[Row]:
    server = CaptureServer(ACCEPT)
    slack = LocalSlack()
    workdir = root / "slack"
    config = workdir / "config" / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"telemetryNoticeShown": True}))
    host = Host(
        "slack-http",
        "ours",
        workdir,
        telemetry_env(server),
        slack.url,
        config=config,
        extra_args=("--http",),
    )
    try:
        line = host.wait_line("URL ", 60)
        if line is None:
            raise RuntimeError(f"the HTTP host did not start:\n{host.stderr_tail()}")
        url = line.split()[1]
        wait_started([host], {host.name: server}, 60)
        clock = SlackClock(slack, url)
        for _ in range(10):  # auth.test, the admin channel lookup, first imports
            clock.command("telemetry status")
        toggles: list[float] = []
        for index in range(plan.slack_requests):
            word = "false" if index % 2 == 0 else "true"
            toggles.append(clock.command(f"setconfig telemetryEnabled {word}"))
        statuses = [clock.command("telemetry status") for _ in range(plan.slack_requests)]
        answer = host.ask(f"status {plan.status_builds}", "STATUS ", timeout=120)
        build = json.loads(answer.split(" ", 1)[1]) if answer else {}
    finally:
        host.stop()
        slack.close()
        server.close()
    count = plan.slack_requests
    rows = []
    for key, label, values in (
        ("slack_setconfig", "`setconfig telemetryEnabled false|true`", toggles),
        ("slack_status", "`telemetry status`", statuses),
    ):
        p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
        rows.append(
            Row(
                key,
                f"7. Slack {label}: post to answer at the stand-in ({count} requests)",
                "p99 <= 25 ms",
                f"p50 {ms(p50)}, p99 {ms(p99)}, max {ms(max(values))}",
                "n/a (the SDK has no Slack commands)",
                p99 <= 0.025,
                {"p50_s": p50, "p99_s": p99, "max_s": max(values), "all_s": values},
            )
        )
    p50_ms, p99_ms = float(build.get("p50_ms", math.nan)), float(build.get("p99_ms", math.nan))
    rows.append(
        Row(
            "status_build",
            f"7b. Status build in-process, plugin.commands.status() ({plan.status_builds}x)",
            "p99 <= 2 ms",
            f"p50 {p50_ms:.2f} ms, p99 {p99_ms:.2f} ms",
            "n/a",
            p99_ms <= 2.0,
            build,
        )
    )
    return rows


# -- the run -------------------------------------------------------------------------------


@contextmanager
def servers(*modes: str) -> Iterator[list[CaptureServer]]:
    started = [CaptureServer(mode) for mode in modes]
    try:
        yield started
    finally:
        for server in started:
            server.close()


def run(plan: Plan, root: Path) -> list[Row]:
    rows: list[Row] = []
    with LocalSlack() as slack, servers(ACCEPT, ACCEPT, ACCEPT, ACCEPT, ACCEPT) as made:
        healthy, refusing, hanging, idle, start = made
        log("warming the bytecode cache")
        warm_bytecode_cache(root, start, slack.url)
        log("starting the hosts")
        server_of: dict[str, CaptureServer] = {}

        def host(name: str, kind: str, server: CaptureServer) -> Host:
            started = Host(name, kind, root / name, telemetry_env(server), slack.url)
            if kind != "none":
                server_of[name] = server
            return started

        idle_hosts = {kind: host(f"idle-{kind}", kind, idle) for kind in ("ours", "plain", "none")}
        healthy_ours = [
            host(f"healthy-ours-{i}", "ours", healthy) for i in range(plan.healthy_runs)
        ]
        healthy_plain = [
            host(f"healthy-plain-{i}", "plain", healthy) for i in range(plan.healthy_runs)
        ]
        refuse_ours = [host(f"refuse-ours-{i}", "ours", refusing) for i in range(plan.outage_hosts)]
        refuse_plain = [
            host(f"refuse-plain-{i}", "plain", refusing) for i in range(plan.outage_hosts)
        ]
        hang_ours = [host(f"hang-ours-{i}", "ours", hanging) for i in range(plan.outage_hosts)]
        hang_plain = [host(f"hang-plain-{i}", "plain", hanging) for i in range(plan.outage_hosts)]
        everyone = [
            *idle_hosts.values(),
            *healthy_ours,
            *healthy_plain,
            *refuse_ours,
            *refuse_plain,
            *hang_ours,
            *hang_plain,
        ]
        wait_started(everyone, server_of, 90)
        time.sleep(2.0)  # let the tracker threads go back to sleep
        log(f"{len(everyone)} hosts up; figure 5 window opens")
        idle_window = IdleWindow(idle_hosts, plan.idle_window)

        log("figure 1: SIGTERM, healthy endpoint")
        rows.append(figure_healthy(healthy_ours, healthy_plain, healthy))

        log("figure 2: SIGTERM, endpoint refusing")
        refusing.set_mode(REFUSE)
        times = kill_all([*refuse_ours, *refuse_plain], cap=30.0)
        ours_times, plain_times = times[: len(refuse_ours)], times[len(refuse_ours) :]
        rows.append(
            figure_outage_exit(
                "sigterm_refuse",
                "2. SIGTERM to exit, endpoint refusing",
                refuse_ours,
                plain_times,
                30.0,
                ours_times,
            )
        )

        log("figure 3: SIGTERM, endpoint hanging (the plain SDK runs on in the background)")
        hanging.set_mode(HANG)
        plain_hang: list[float | None] = []
        plain_thread = threading.Thread(
            target=lambda: plain_hang.extend(kill_all(hang_plain, cap=plan.plain_hang_cap)),
            daemon=True,
        )
        plain_thread.start()
        hang_times = kill_all(hang_ours, cap=30.0)

        log("figure 4: start cost and first commands")
        rows.extend(figure_start(plan, root, start, slack.url))

        log("figure 7: Slack command latency")
        slack_rows = figure_slack(plan, root)

        if idle_window.ended == 0.0:
            log("figure 5: waiting for the idle window to close")
        idle_row = idle_window.row()
        for idle_host in idle_hosts.values():
            idle_host.stop()

        log(f"figure 6: {plan.outage:g} s outage with 3 restarts")
        outage_row = figure_outage(plan, root, slack.url)

        if plain_thread.is_alive():
            log("figure 3: waiting for the plain SDK to exit or reach its cap")
        plain_thread.join(plan.plain_hang_cap + 30)
        hanging.close()
        rows.insert(
            2,
            figure_outage_exit(
                "sigterm_hang",
                "3. SIGTERM to exit, endpoint accepting, never answering",
                hang_ours,
                plain_hang or [None] * len(hang_plain),
                plan.plain_hang_cap,
                hang_times,
            ),
        )
        rows.append(idle_row)
        rows.append(outage_row)
        rows.extend(slack_rows)
        for started in Host.registry:
            started.stop(timeout=5)
    return rows


def finite(value: Any) -> Any:
    """``value`` with every infinite or NaN float as None: plain JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| figure | target | ours | plain SDK | pass |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        cells = (row.figure, row.target, row.ours, row.plain, row.verdict)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer runs, shorter windows")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers to PATH")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    plan = Plan.make(args.quick)
    root = Path(tempfile.mkdtemp(prefix="slackonos-bench-"))
    use_bytecode_cache(root)
    load_before = os.getloadavg()
    began = time.monotonic()
    try:
        rows = run(plan, root)
    finally:
        for started in Host.registry:
            started.kill()
        if args.keep:
            log(f"work folder kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.monotonic() - began
    load_after = os.getloadavg()
    print(table(rows))
    print(
        f"\n{'quick' if plan.quick else 'full'} run, {elapsed:.0f} s, {os.cpu_count()} CPUs; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        "(timings are wall-clock: other work on the machine inflates them)"
    )
    if args.json:
        document = {
            "plan": asdict(plan),
            "elapsed_s": elapsed,
            "load_average": {"before": load_before, "after": load_after},
            "cpus": os.cpu_count(),
            "rows": [{**asdict(row), "pass": row.passed, "verdict": row.verdict} for row in rows],
        }
        Path(args.json).write_text(json.dumps(finite(document), indent=2, default=str) + "\n")
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
