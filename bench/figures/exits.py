"""SIGTERM to exit: in a host (both exit styles, against both SDK paths), in its first
second, in `run --socket`, and the console with no network.

Each round is one process per variant; every exit is timed from the signal (or EOF)
to the kernel reporting the process gone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    DEADLINE,
    DEADLINE_MARGIN,
    ROUNDS,
    Context,
    Row,
    Spread,
    capped,
    ms,
    secs,
    telemetry_env,
)
from bench.processes import BenchProcess, BotHost, cli, delivered, wait_started
from tests.support.capture import ACCEPT, HANG, REFUSE, CaptureServer
from tests.support.files import outbox_events
from tests.support.processes import free_port
from tests.support.slack_api import SlackStandIn, SocketModeStandIn
from tests.support.waiting import wait_until

HEALTHY, REFUSING, HANGING = "healthy", "refusing", "hanging"
OURS_VARIANTS = (("ours", "default"), ("ours", "sys-exit"))
PLAIN_VARIANTS = (("plain", "default"), ("plain", "sys-exit"), ("plain", "atexit"))
# A host with no telemetry that calls sys.exit(0): Python's own clean-up with Bolt loaded.
BARE = ("none", "sys-exit")
OURS_CAP = 30.0  # our exits are bounded: anything near this is a failure anyway
BOUND = DEADLINE + DEADLINE_MARGIN
FIRST_SECOND_DELAY = 0.3
SOCKET_APP_TOKEN = "xapp-1-A0BENCH01-1-bench"
# A console this old, its startup event in the outbox, has tried to send it (and failed).
CONSOLE_AGE = 3.0


@dataclass
class ExitFleet:
    """Hosts waiting to be stopped, by endpoint state and (kind, exit style); one per round."""

    servers: dict[str, CaptureServer]
    hosts: dict[tuple[str, str, str], list[BotHost]] = field(default_factory=dict)

    def of(self, state: str, variant: tuple[str, str]) -> list[BotHost]:
        return self.hosts.get((state, *variant), [])

    def all(self) -> list[BotHost]:
        return [host for hosts in self.hosts.values() for host in hosts]

    def close(self) -> None:
        for server in self.servers.values():
            server.close()


def start_exit_fleet(context: Context) -> ExitFleet:
    """Start every host figures 1-3 stop (they start with the endpoint healthy)."""
    fleet = ExitFleet({state: CaptureServer(ACCEPT) for state in (HEALTHY, REFUSING, HANGING)})
    for state, server in fleet.servers.items():
        variants = [*OURS_VARIANTS, *PLAIN_VARIANTS] + ([BARE] if state == HEALTHY else [])
        for kind, style in variants:
            fleet.hosts[(state, kind, style)] = [
                _bot(context, f"{state}-{kind}-{style}-{index}", kind, style, server)
                for index in range(ROUNDS)
            ]
    return fleet


def wait_fleet_started(fleet: ExitFleet, timeout: float) -> None:
    servers = {
        host.name: fleet.servers[state]
        for (state, kind, _), hosts in fleet.hosts.items()
        for host in hosts
        if kind != "none"
    }
    wait_started(fleet.all(), servers, timeout)


def _bot(context: Context, name: str, kind: str, style: str, server: CaptureServer) -> BotHost:
    env = telemetry_env(server.url)
    return BotHost(name, kind, style, context.config(name), context.slack_url, env, context.logs)


# -- figure 1: healthy endpoint ------------------------------------------------------------


def figure_healthy(fleet: ExitFleet) -> list[Row]:
    server = fleet.servers[HEALTHY]
    times: dict[tuple[str, str], list[float | None]] = {}
    sent: dict[tuple[str, str], int] = {}
    for index in range(ROUNDS):
        for variant in [*OURS_VARIANTS, *PLAIN_VARIANTS, BARE]:
            host = fleet.of(HEALTHY, variant)[index]
            times.setdefault(variant, []).append(host.sigterm_to_exit(OURS_CAP))
            sent[variant] = sent.get(variant, 0) + delivered(host, server, "shutdown")
    spread = {variant: Spread.of(found) for variant, found in times.items()}

    def cell(variant: tuple[str, str]) -> str:
        return f"{spread[variant].show(ms)}; shutdown delivered {sent[variant]}/{ROUNDS}"

    ours_a, ours_b = spread[OURS_VARIANTS[0]], spread[OURS_VARIANTS[1]]
    added_b = ours_b.median - spread[BARE].median
    numbers = {f"{kind}_{style}_s": list(found.values) for (kind, style), found in spread.items()}
    all_sent = {variant: sent[variant] == ROUNDS for variant in OURS_VARIANTS}
    return [
        Row(
            "sigterm_healthy_default",
            "1a. SIGTERM to exit, endpoint healthy; exit by the signal's default action "
            "(no Python clean-up)",
            "<= 100 ms, shutdown delivered",
            cell(OURS_VARIANTS[0]),
            f"{cell(PLAIN_VARIANTS[0])} (handler: capture, `shutdown()`, default action)",
            ours_a.median <= 0.100 and all_sent[OURS_VARIANTS[0]],
            numbers,
        ),
        Row(
            "sigterm_healthy_sys_exit",
            "1b. Same, the host's SIGTERM handler calls `sys.exit(0)` (Python's clean-up runs)",
            "<= no-telemetry host + 100 ms, shutdown delivered",
            f"{cell(OURS_VARIANTS[1])}; {ms(added_b)} over no telemetry",
            f"{cell(PLAIN_VARIANTS[1])} (capture, `shutdown()`, `sys.exit(0)`); "
            f"no telemetry {spread[BARE].show(ms)}",
            added_b <= 0.100 and all_sent[OURS_VARIANTS[1]],
        ),
        Row(
            "sigterm_healthy_atexit",
            "1c. Baseline: the plain SDK's own exit hook (capture, `sys.exit(0)`; the SDK "
            "sends at exit)",
            "baseline",
            f"1b: {ours_b.show(ms)}",
            cell(PLAIN_VARIANTS[2]),
            None,
        ),
    ]


# -- figures 2 and 3: endpoint refusing, endpoint hanging ----------------------------------


def stop_in_outage(fleet: ExitFleet, states: Sequence[str]) -> None:
    """Put each endpoint in its state and SIGTERM every host of the ``states``, a round at
    a time; wait for ours only (the plain SDK's slow exits are watched and collected
    later)."""
    for state in states:
        fleet.servers[state].set_mode(REFUSE if state == REFUSING else HANG)
    for index in range(ROUNDS):
        for state in states:
            for variant in (*OURS_VARIANTS, *PLAIN_VARIANTS):
                fleet.of(state, variant)[index].terminate()
        for state in states:
            for variant in OURS_VARIANTS:
                fleet.of(state, variant)[index].wait_gone(OURS_CAP)


def outage_rows(fleet: ExitFleet, state: str, plain_cap: float) -> list[Row]:
    """Figure 2 (refusing) or 3 (hanging), once every exit is in or capped."""
    number = "2" if state == REFUSING else "3"
    what = "refusing connections" if state == REFUSING else "accepting, never answering"
    server = fleet.servers[state]
    times: dict[tuple[str, str], Spread] = {}
    kept: dict[tuple[str, str], int] = {}
    lost: dict[tuple[str, str], int] = {}
    for variant in (*OURS_VARIANTS, *PLAIN_VARIANTS):
        hosts = fleet.of(state, variant)
        cap = OURS_CAP if variant in OURS_VARIANTS else plain_cap
        times[variant] = Spread.of(host.seconds_to_exit(cap) for host in hosts)
        kept[variant] = sum(_kept(host) for host in hosts)
        lost[variant] = sum(
            not _kept(host) and not delivered(host, server, "shutdown") for host in hosts
        )

    def ours(variant: tuple[str, str]) -> str:
        return f"{times[variant].show(secs)}; shutdown kept in the outbox {kept[variant]}/{ROUNDS}"

    def plain(variant: tuple[str, str]) -> str:
        return f"{times[variant].show(capped(plain_cap))}; shutdown lost {lost[variant]}/{ROUNDS}"

    def passed(variant: tuple[str, str]) -> bool:
        return times[variant].high <= BOUND and kept[variant] == ROUNDS

    target = f"<= {BOUND:g} s (deadline {DEADLINE:g} s + {DEADLINE_MARGIN:g}), shutdown kept"
    numbers = {f"{kind}_{style}_s": list(found.values) for (kind, style), found in times.items()}
    return [
        Row(
            f"sigterm_{state}_default",
            f"{number}a. SIGTERM to exit, endpoint {what}; default action (pass on the max)",
            target,
            ours(OURS_VARIANTS[0]),
            f"{plain(PLAIN_VARIANTS[0])} (capture, `shutdown()`, default action)",
            passed(OURS_VARIANTS[0]),
            numbers,
        ),
        Row(
            f"sigterm_{state}_sys_exit",
            f"{number}b. Same, the host's handler calls `sys.exit(0)` (pass on the max)",
            target,
            ours(OURS_VARIANTS[1]),
            f"{plain(PLAIN_VARIANTS[1])} (capture, `shutdown()`, `sys.exit(0)`)",
            passed(OURS_VARIANTS[1]),
        ),
        Row(
            f"sigterm_{state}_atexit",
            f"{number}c. Baseline: the plain SDK's own exit hook, endpoint {what}",
            "baseline",
            f"{number}b: {times[OURS_VARIANTS[1]].show(secs)}",
            plain(PLAIN_VARIANTS[2]),
            None,
        ),
    ]


def _kept(host: BotHost) -> bool:
    shutdown = host.made_uuid("shutdown")
    return shutdown is not None and any(
        entry.get("uuid") == shutdown for entry in outbox_events(host.config)
    )


# -- figure 4: SIGTERM in the first second -------------------------------------------------


def figure_first_second(context: Context) -> Row:
    """A host stopped 0.3 s after it is up: before the plugin's background start."""
    times: dict[str, list[float | None]] = {"ours": [], "plain": []}
    sent = {"ours": 0, "plain": 0}
    with CaptureServer(ACCEPT) as server:
        for index in range(ROUNDS):
            for kind in times:
                host = _bot(context, f"first-second-{kind}-{index}", kind, "default", server)
                time.sleep(max(0.0, host.ready() + FIRST_SECOND_DELAY - time.monotonic()))
                times[kind].append(host.sigterm_to_exit(OURS_CAP))
                both = delivered(host, server, "startup") and delivered(host, server, "shutdown")
                sent[kind] += both
    spread = {kind: Spread.of(found) for kind, found in times.items()}

    def cell(kind: str) -> str:
        return f"{spread[kind].show(ms)}; startup and shutdown delivered {sent[kind]}/{ROUNDS}"

    return Row(
        "sigterm_first_second",
        f"4. SIGTERM {FIRST_SECOND_DELAY:g} s after the host is up (before the plugin's "
        "background start), endpoint healthy, default action",
        "report",
        cell("ours"),
        f"{cell('plain')} (posthog imported at start)",
        None,
        {kind: list(found.values) for kind, found in spread.items()},
    )


# -- figure 5: `run --socket` --------------------------------------------------------------


def figure_socket(context: Context) -> Row:
    times: list[float | None] = []
    sent = 0
    with CaptureServer(ACCEPT) as server:
        for index in range(ROUNDS):
            took, shutdown = _socket_round(context, server, index)
            times.append(took)
            sent += shutdown
    spread = Spread.of(times)
    return Row(
        "sigterm_socket",
        "5. SIGTERM to exit, `run --socket` (Socket Mode stand-in), endpoint healthy",
        "<= 100 ms, shutdown delivered",
        f"{spread.show(ms)}; shutdown delivered {sent}/{ROUNDS}",
        "n/a",
        spread.median <= 0.100 and sent == ROUNDS,
        {"ours_s": list(spread.values)},
    )


def _socket_round(context: Context, server: CaptureServer, index: int) -> tuple[float | None, bool]:
    config = context.config(f"socket-{index}")
    with (
        SocketModeStandIn() as socket_mode,
        SlackStandIn(socket_mode_url=socket_mode.url()) as slack,
    ):
        env = telemetry_env(
            server.url,
            SLACK_BOT_TOKEN="xoxb-bench",
            SLACK_APP_TOKEN=SOCKET_APP_TOKEN,
            SLACK_API_URL=slack.url,
        )
        argv = ["--config", str(config), "run", "--socket"]
        bot = cli(f"socket-{index}", argv, env, context.logs)
        if socket_mode.wait_for_connection(60) is None:
            raise RuntimeError(f"no Socket Mode connection:\n{bot.stderr_tail()}")
        if not server.wait_for(_has_event(config, "startup"), 60):
            raise RuntimeError(f"no startup event from `run --socket`:\n{bot.stderr_tail()}")
        took = bot.sigterm_to_exit(OURS_CAP)
        return took, _has_event(config, "shutdown")(server) and bot.returncode == 0


def _has_event(config: Path, name: str) -> Callable[[CaptureServer], bool]:
    def found(server: CaptureServer) -> bool:
        instance = json.loads(config.read_text()).get("telemetryInstanceId")
        return any(
            event.get("event") == name and event.get("distinct_id") == instance
            for event in server.events
        )

    return found


# -- figure 6: the console with no network -------------------------------------------------


def figure_console(context: Context) -> Row:
    """The rounds' consoles start together; each is then stopped on its own."""
    configs = [context.config(f"console-{index}") for index in range(ROUNDS)]
    consoles = [_start_console(context, config) for config in configs]
    times: list[float | None] = []
    kept = 0
    for console, config in zip(consoles, configs, strict=True):
        took, waiting = _stop_console(console, config)
        times.append(took)
        kept += waiting
    spread = Spread.of(times)
    return Row(
        "console_offline",
        "6. Console exit (EOF) with no network, the failure immediate (connection refused): "
        "`run --console --posthog real`",
        "<= 0.5 s, the events wait in the outbox",
        f"{spread.show(secs)}; startup and shutdown kept in the outbox {kept}/{ROUNDS}",
        "n/a",
        spread.median <= 0.5 and kept == ROUNDS,
        {"ours_s": list(spread.values)},
    )


def _start_console(context: Context, config: Path) -> BenchProcess:
    # PostHog on a port nothing listens on: every try is refused at once.
    env = telemetry_env(f"http://127.0.0.1:{free_port()}")
    argv = ["--config", str(config), "run", "--console", "--posthog", "real"]
    return cli(config.parent.parent.name, argv, env, context.logs)


def _stop_console(console: BenchProcess, config: Path) -> tuple[float | None, bool]:
    """EOF once the startup event waits in the outbox and the tracker has tried to send."""
    if console.wait_line("Each line is a message", 60) is None:
        raise RuntimeError(f"the console did not start:\n{console.stderr_tail()}")
    if not wait_until(lambda: "startup" in _waiting(config), 30, interval=0.05):
        raise RuntimeError(f"the console made no startup event:\n{console.stderr_tail()}")
    time.sleep(max(0.0, console.started_at + CONSOLE_AGE - time.monotonic()))
    console.close_stdin()
    took = console.seconds_to_exit(OURS_CAP)
    waiting = _waiting(config)
    return took, console.returncode == 0 and {"startup", "shutdown"} <= waiting


def _waiting(config: Path) -> set[str]:
    return {str(entry.get("event")) for entry in outbox_events(config)}
