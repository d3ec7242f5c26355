"""Figure 10: the CPU an idle bot uses, ours against the plain SDK and no telemetry.

One host of each kind per round, all idling together through one window; each host's
process CPU time is read at the window's start and, on a thread of its own, exactly at
its end, whatever the other figures are doing then.
"""

from __future__ import annotations

import threading
import time

from bench.common import ROUNDS, Context, Row, Spread, ms, telemetry_env
from bench.processes import BotHost
from tests.support.capture import CaptureServer

KINDS = ("ours", "plain", "none")
TARGET = 0.020  # seconds of CPU per minute
SETTLE = 2.0  # after the startup events: the trackers' threads back asleep


class IdleWindow:
    def __init__(self, hosts: dict[str, list[BotHost]], window: float) -> None:
        self.hosts = hosts
        self.window = window
        time.sleep(SETTLE)
        self.began = time.monotonic()
        self.before = self._read()
        self.after: dict[str, list[float]] = {}
        self.ended = 0.0
        self._thread = threading.Thread(target=self._close, name="idle-window", daemon=True)
        self._thread.start()

    def _read(self) -> dict[str, list[float]]:
        return {kind: [host.cpu_seconds() for host in hosts] for kind, hosts in self.hosts.items()}

    def _close(self) -> None:
        time.sleep(max(0.0, self.began + self.window - time.monotonic()))
        self.after = self._read()
        self.ended = time.monotonic()

    def row(self) -> Row:
        self._thread.join(self.window + 60)
        measured = self.ended - self.began
        used = {
            kind: Spread.of(
                (after - before) * 60.0 / measured
                for before, after in zip(self.before[kind], self.after[kind], strict=True)
            )
            for kind in self.hosts
        }
        for hosts in self.hosts.values():
            for host in hosts:
                host.end()
        scaled = "" if self.window >= 60.0 else f"; {measured:.0f} s measured, scaled to 60 s"
        return Row(
            "idle_cpu",
            f"10. CPU of an idle bot over 60 s (process CPU time; {ROUNDS} hosts of each kind "
            f"idling together{scaled})",
            "<= 20 ms",
            used["ours"].show(ms),
            f"plain SDK {used['plain'].show(ms)}; no telemetry {used['none'].show(ms)}",
            used["ours"].median <= TARGET,
            {kind: list(found.values) for kind, found in used.items()},
        )


def start_idle_hosts(context: Context, server: CaptureServer) -> dict[str, list[BotHost]]:
    return {
        kind: [
            BotHost(
                f"idle-{kind}-{index}",
                kind,
                "default",
                context.config(f"idle-{kind}-{index}"),
                context.slack_url,
                telemetry_env(server.url),
                context.logs,
            )
            for index in range(ROUNDS)
        ]
        for kind in KINDS
    }
