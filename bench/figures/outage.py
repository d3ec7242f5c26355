"""Figure 11: events lost over an outage with restarts, ours against the plain SDK.

Each round is one bot of each kind, with a heartbeat every second, against an endpoint
of its own that refuses connections for the first half of the outage and answers 500
for the second half; each bot is restarted (SIGTERM, then a new process on the same
config) three times during it. The rounds run side by side.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from bench.common import ROUNDS, Context, Row, Spread, log, secs, telemetry_env
from bench.processes import BotHost, cli, received_uuids
from tests.support.capture import ACCEPT, ERROR_500, REFUSE, CaptureServer
from tests.support.waiting import wait_until

MIN_RUN_SECONDS = 1.0  # a bot lives at least this long after READY before its restart
RESTARTS = 3
EXIT_CAP = 30.0


@dataclass
class OutageRun:
    name: str
    kind: str
    context: Context
    server: CaptureServer = field(default_factory=lambda: CaptureServer(REFUSE))
    hosts: list[BotHost] = field(default_factory=list)
    recovered_in: float | None = None

    def __post_init__(self) -> None:
        self.config = self.context.config(self.name)
        heartbeat = (
            "TELEMETRY_HEARTBEAT_SECONDS" if self.kind == "ours" else "BENCH_HEARTBEAT_SECONDS"
        )
        self.env = telemetry_env(self.server.url, **{heartbeat: "1"})

    def start(self) -> None:
        # The plain SDK stops as well as it can: capture, shutdown(), sys.exit(0).
        style = "default" if self.kind == "ours" else "sys-exit"
        name = f"{self.name}-{len(self.hosts)}"
        self.hosts.append(
            BotHost(
                name,
                self.kind,
                style,
                self.config,
                self.context.slack_url,
                self.env,
                self.context.logs,
            )
        )

    def restart(self) -> None:
        """SIGTERM the running bot once it has lived a moment, then start the next one."""
        current = self.hosts[-1]
        time.sleep(max(0.0, current.ready() + MIN_RUN_SECONDS - time.monotonic()))
        current.sigterm_to_exit(EXIT_CAP)
        self.start()

    def made(self) -> list[tuple[float, str, str]]:
        return [made for host in self.hosts for made in host.made()]

    def missing(self) -> set[str]:
        return {uuid for _, uuid, _ in self.made()} - received_uuids(self.server)


def figure_outage(context: Context) -> Row:
    plan = context.plan
    runs = [
        OutageRun(f"outage-{kind}-{index}", kind, context)
        for index in range(ROUNDS)
        for kind in ("ours", "plain")
    ]
    try:
        began = time.monotonic()
        for run in runs:
            run.start()

        def schedule(run: OutageRun) -> None:
            # Each bot on its own clock: a slow exit of one never delays another.
            for restart in range(1, RESTARTS + 1):
                time.sleep(
                    max(0.0, began + restart * plan.outage / (RESTARTS + 1) - time.monotonic())
                )
                run.restart()

        threads = [threading.Thread(target=schedule, args=(run,)) for run in runs]
        for thread in threads:
            thread.start()
        _at(began + plan.outage / 2, [run.server for run in runs], ERROR_500)
        back = _at(began + plan.outage, [run.server for run in runs], ACCEPT)
        for thread in threads:  # the plain SDK's slow exits may run past the outage
            thread.join(EXIT_CAP * 2)
        log(f"figure 11: endpoint back after {back - began:.1f} s; waiting for the outboxes")
        ours = [run for run in runs if run.kind == "ours"]
        _wait_recovered(ours, back, plan.recovery_cap)
        for run in runs:
            run.hosts[-1].ready()
        for run in runs:
            run.hosts[-1].terminate()
        for run in runs:
            run.hosts[-1].seconds_to_exit(EXIT_CAP)
        flushed = _flush_left(context, ours)
        return _row(context, runs, back, flushed)
    finally:
        for run in runs:
            run.server.close()


def _at(when: float, servers: list[CaptureServer], mode: str) -> float:
    time.sleep(max(0.0, when - time.monotonic()))
    for server in servers:
        server.set_mode(mode)
    return time.monotonic()


def _wait_recovered(runs: list[OutageRun], back: float, cap: float) -> None:
    """Until every run has all its events delivered (at most ``cap`` s after ``back``),
    noting when each got there."""

    def recovered() -> bool:
        for run in runs:
            if run.recovered_in is None and not run.missing():
                run.recovered_in = time.monotonic() - back
        return all(run.recovered_in is not None for run in runs)

    wait_until(recovered, max(0.0, back + cap - time.monotonic()), interval=0.1)


def _flush_left(context: Context, runs: list[OutageRun]) -> int:
    """What still waits after the recovery cap: sent by `flush` (then counted as needed)."""
    needed = 0
    for run in runs:
        if run.missing():
            needed += 1
            argv = ["--config", str(run.config), "flush"]
            flush = cli(f"{run.name}-flush", argv, run.env, context.logs)
            flush.close_stdin()
            flush.seconds_to_exit(60)
    return needed


def _row(context: Context, runs: list[OutageRun], back: float, flushed: int) -> Row:
    numbers: dict[str, list[dict[str, int]]] = {"ours": [], "plain": []}
    for run in runs:
        made = run.made()
        made_ids = {uuid for _, uuid, _ in made}
        during = {uuid for seen, uuid, _ in made if seen < back}
        got = [
            str(event.get("uuid")) for event in run.server.events if event.get("uuid") in made_ids
        ]
        lost = made_ids - set(got)
        numbers[run.kind].append(
            {
                "made": len(made_ids),
                "made_in_outage": len(during),
                "lost": len(lost),
                "lost_made_in_outage": len(lost & during),
                "duplicates": len(got) - len(set(got)),
            }
        )

    def cell(kind: str) -> str:
        total = {key: sum(found[key] for found in numbers[kind]) for key in numbers[kind][0]}
        return (
            f"{total['lost']} lost of {total['made']} made ({total['lost_made_in_outage']} of "
            f"{total['made_in_outage']} made in the outage); {total['duplicates']} duplicates"
        )

    ours_runs = [run for run in runs if run.kind == "ours"]
    recovered = Spread.of(run.recovered_in for run in ours_runs)
    ours_cell = f"{cell('ours')}; outbox empty {recovered.show(secs)} after the endpoint was back"
    if flushed:
        ours_cell += f" (`flush` needed in {flushed}/{ROUNDS})"
    missed = sum(found["lost"] + found["duplicates"] for found in numbers["ours"])
    return Row(
        "outage_loss",
        f"11. Events lost: {context.plan.outage:g} s outage (refused, then 500), {RESTARTS} "
        f"restarts, heartbeat 1 s ({ROUNDS} rounds side by side, totals)",
        "0 lost, 0 duplicates",
        ours_cell,
        cell("plain"),
        missed == 0,
        {**numbers, "recovered_in_s": list(recovered.values)},
    )
