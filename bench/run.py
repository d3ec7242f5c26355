"""The benchmark of slackonos_telemetry: our plugin against the plain posthog SDK.

Run from the repo root: ``.venv/bin/python -m bench.run [--quick] [--json PATH]`` (or
``make bench``). It prints one markdown table, figure | target | ours | plain SDK (or
baseline) | pass, every figure measured over 3 rounds: each cell gives the median and,
in brackets, the spread [min - max]. A row passes on the median unless it says otherwise.
The exit status is 0 when every row with a target passes, 1 when one fails.

Figures (each a function in bench/figures/):
  1-3   SIGTERM to exit, endpoint healthy / refusing / hanging, both exit styles for
        both sides (the signal's default action; the host's handler calling
        sys.exit(0)), and the plain SDK's own exit hook as a baseline (exits.py)
  4-6   SIGTERM in the first second; `run --socket`; the console offline (exits.py)
  7-9   start cost of each way in; CPU and memory in the first 5 s; host commands while
        posthog loads in the background (start.py)
  10    idle CPU (idle.py)          11  events lost over an outage (outage.py)
  12    flush, add and an old 10,000-event file (outbox.py)
  13-15 host ack with a 50 MB config; Slack command latency; host ack of a
        40,000-character message against a short one (slack.py)

``--quick`` shortens the windows, sends fewer requests, and runs some rounds side by side
where that costs only precision (figures 2-3 and 8, and figure 9's baseline once).

Every process runs with bytecode cached outside the repo, as an installed wheel has it.
Every server the bench starts sets TCP_NODELAY (slackonos_telemetry.run.http_server, and
websockets for the Socket Mode stand-in).
Only 127.0.0.1 is ever contacted. Every process the bench starts ends by itself (a
lifetime cap) and is killed by its pid at the end if still there; every server is
closed before the bench returns.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import Context, Plan, Row, host_env, log, use_bytecode_cache
from bench.figures import exits, idle, outage, outbox, slack, start
from bench.processes import BenchProcess, cli, kill_all, wait_started
from tests.support.capture import ACCEPT, CaptureServer
from tests.support.slack_api import SlackStandIn

# The table's rows, in order (the figures are measured in another).
ORDER = (*map(str, range(1, 12)), "12a", "12b", "12c", "13", "14", "15")


def warm_bytecode_cache(context: Context) -> None:
    """Compile what the CLI loads before anything is timed. The bot hosts' modules are
    compiled by the hosts started first (untimed), the start figures warm their own."""
    version = cli("warm-cli", ["--version"], host_env(), context.logs)
    version.close_stdin()
    version.seconds_to_exit(60)


def measure(plan: Plan, root: Path) -> list[Row]:
    rows: dict[str, list[Row]] = {}

    def figure(number: str, make: Callable[[], Row | list[Row]]) -> None:
        log(f"figure {number}")
        made = make()
        rows[number] = made if isinstance(made, list) else [made]

    with SlackStandIn() as slack_api, CaptureServer(ACCEPT) as idle_server:
        context = Context(plan, root, slack_api.url)
        log("warming the bytecode cache")
        warm_bytecode_cache(context)
        log("starting the idle hosts and the hosts figures 1-3 stop")
        idle_hosts = idle.start_idle_hosts(context, idle_server)
        fleet = exits.start_exit_fleet(context)
        try:
            idle_servers = {
                host.name: idle_server
                for hosts in idle_hosts.values()
                for host in hosts
                if host.kind != "none"
            }
            wait_started(
                [host for hosts in idle_hosts.values() for host in hosts], idle_servers, 180
            )
            exits.wait_fleet_started(fleet, 180)
            log(f"{len(BenchProcess.registry)} processes up; the idle window opens")
            window = idle.IdleWindow(idle_hosts, plan.idle_window)
            figure("1", lambda: exits.figure_healthy(fleet))
            log("figures 2 and 3: SIGTERM in an outage (the plain SDK's exits run on)")
            if plan.quick:  # both outages at once: a round's exits overlap
                exits.stop_in_outage(fleet, (exits.REFUSING, exits.HANGING))
            else:
                exits.stop_in_outage(fleet, (exits.REFUSING,))
                exits.stop_in_outage(fleet, (exits.HANGING,))
            figure("4", lambda: exits.figure_first_second(context))
            figure("5", lambda: exits.figure_socket(context))
            figure("6", lambda: exits.figure_console(context))
            figure("7", lambda: start.figure_start(context))
            figure("8", lambda: start.figure_first_seconds(context))
            figure("9", lambda: start.figure_import_window(context))
            figure("12a", lambda: outbox.figure_flush(context))
            figure("12b", lambda: outbox.figure_add(context))
            figure("12c", lambda: outbox.figure_old_file(context))
            figure("13", lambda: slack.figure_ack(context))
            figure("14", lambda: slack.figure_commands(context))
            figure("15", lambda: slack.figure_long_messages(context))
            figure("10", window.row)
            figure("11", lambda: outage.figure_outage(context))
            log("figures 2 and 3: collecting the plain SDK's exits")
            figure("2", lambda: exits.outage_rows(fleet, exits.REFUSING, plan.plain_cap))
            figure("3", lambda: exits.outage_rows(fleet, exits.HANGING, plan.plain_cap))
        finally:
            fleet.close()
    return [row for number in ORDER for row in rows.get(number, [])]


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| figure | target | ours | plain SDK (or baseline) | pass |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        cells = (row.figure, row.target, row.ours, row.plain, row.verdict)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def finite(value: Any) -> Any:
    """``value`` with every infinite or NaN float as None: plain JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def load_text(load: tuple[float, float, float]) -> str:
    return f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shorter windows, fewer requests, some rounds side by side",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every number to PATH")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (its logs)")
    args = parser.parse_args(argv)
    plan = Plan.make(args.quick)
    root = Path(tempfile.mkdtemp(prefix="slackonos-bench-"))
    use_bytecode_cache()
    load_before = os.getloadavg()
    print(f"Load average before: {load_text(load_before)}; {os.cpu_count()} CPUs", flush=True)
    began = time.monotonic()
    try:
        rows = measure(plan, root)
    finally:
        kill_all()
        if args.keep:
            log(f"work folder kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.monotonic() - began
    load_after = os.getloadavg()
    print(table(rows))
    print(
        f"\n{'Quick' if plan.quick else 'Full'} run, {elapsed:.0f} s. Load average after: "
        f"{load_text(load_after)}. Timings are wall-clock: other work on the machine inflates them."
    )
    if args.json:
        document = {
            "plan": asdict(plan),
            "elapsed_s": elapsed,
            "load_average": {"before": load_before, "after": load_after},
            "cpus": os.cpu_count(),
            "rows": [{**asdict(row), "verdict": row.verdict} for row in rows],
        }
        Path(args.json).write_text(json.dumps(finite(document), indent=2, default=str) + "\n")
    failed = [row.key for row in rows if row.passed is False]
    if failed:
        log(f"missed targets: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
