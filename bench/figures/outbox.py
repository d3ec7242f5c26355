"""Figure 12: costs that grow with the outbox. A flush of 1,000 waiting events, adding one
event to a nearly full outbox, and a bot starting on a 10,000-event file an older
version left (``telemetry-outbox.json`` beside the config, which the bot takes over).
The work runs in processes of its own (``bench.hosts.outbox``) against a capture server
in the bench's process."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import (
    ROUNDS,
    Context,
    Row,
    Spread,
    ms,
    secs,
    telemetry_env,
)
from bench.processes import BotHost, cli, run_json
from tests.support.capture import ACCEPT, CaptureServer
from tests.support.files import outbox_dropped, outbox_events
from tests.support.waiting import wait_until

FLUSHED = 1000
NEARLY_FULL = 950
CAPACITY = 1000
ADDS = 20
OLD_FILE_EVENTS = 10_000
# Longest wait for a bot to empty that file: far past the target, so that a slow take-over
# still shows its time rather than a cap.
OLD_FILE_CAP = 120.0
FLUSH_TARGET = 1.0
ADD_TARGET = 0.010


def _work(context: Context, server: CaptureServer, name: str, *args: str) -> dict[str, Any]:
    argv = ["-m", "bench.hosts.outbox", *args]
    return run_json(name, argv, telemetry_env(server.url), context.logs)


def _config_arg(context: Context, name: str) -> list[str]:
    return ["--config", str(context.config(name))]


def _duplicates(server: CaptureServer) -> int:
    uuids = [event.get("uuid") for event in server.events]
    return len(uuids) - len(set(uuids))


# -- 12a: flush ----------------------------------------------------------------------------


def figure_flush(context: Context) -> Row:
    drains: list[float] = []
    complete = 0
    requests: list[int] = []
    plain: list[float] = []
    end_to_end: list[float | None] = []
    for index in range(ROUNDS):
        with CaptureServer(ACCEPT) as server:
            name = f"flush-{index}"
            result = _work(
                context, server, name, "flush", *_config_arg(context, name), "--count", str(FLUSHED)
            )
            drains.append(float(result["drain_s"]))
            requests.append(len(server.requests))
            complete += len(server.events) == FLUSHED and _duplicates(server) == 0
        with CaptureServer(ACCEPT) as server:
            result = _work(
                context, server, f"plain-flush-{index}", "plain-flush", "--count", str(FLUSHED)
            )
            plain.append(float(result["flush_s"]))
        with CaptureServer(ACCEPT) as server:
            end_to_end.append(_cli_flush(context, server, index))
    drain, cli_time = Spread.of(drains), Spread.of(end_to_end)
    return Row(
        "flush_1000",
        f"12a. Flush of {FLUSHED:,} waiting events to a healthy loopback endpoint: "
        "`Delivery.drain` in-process, the SDK client built before",
        f"<= {FLUSH_TARGET:g} s",
        f"{drain.show(secs)}; all delivered, no duplicates {complete}/{ROUNDS}; "
        f"{statistics.median(requests):.0f} requests; the CLI's `flush` end to end "
        f"(Python start, posthog import): {cli_time.show(secs)}",
        f"capture x{FLUSHED:,}, then `flush()`: {Spread.of(plain).show(secs)}",
        drain.median <= FLUSH_TARGET and complete == ROUNDS,
        {"drain_s": drains, "plain_s": plain, "cli_s": list(cli_time.values)},
    )


def _cli_flush(context: Context, server: CaptureServer, index: int) -> float | None:
    name = f"flush-cli-{index}"
    config = context.config(name)
    _work(context, server, f"{name}-fill", "fill", "--config", str(config), "--count", str(FLUSHED))
    argv = ["--config", str(config), "flush"]
    flush = cli(name, argv, telemetry_env(server.url), context.logs)
    took = flush.seconds_to_exit(120, since=flush.started_at)
    return took if flush.returncode == 0 and len(server.events) == FLUSHED else None


# -- 12b: add ------------------------------------------------------------------------------


def figure_add(context: Context) -> Row:
    found: dict[int, list[list[float]]] = {NEARLY_FULL: [], CAPACITY: []}
    plain: list[list[float]] = []
    with CaptureServer(ACCEPT) as server:
        for index in range(ROUNDS):
            for fill in found:
                name = f"add-{fill}-{index}"
                result = _work(
                    context,
                    server,
                    name,
                    "add",
                    *_config_arg(context, name),
                    "--count",
                    str(fill),
                    "--adds",
                    str(ADDS),
                )
                found[fill].append([float(value) for value in result["add_s"]])
            result = _work(context, server, f"plain-add-{index}", "plain-add", "--adds", str(ADDS))
            plain.append([float(value) for value in result["add_s"]])

    def p50(rounds: list[list[float]]) -> Spread:
        return Spread.of(statistics.median(values) for values in rounds)

    def worst(rounds: list[list[float]]) -> float:
        return max(max(values) for values in rounds)

    nearly, full = p50(found[NEARLY_FULL]), p50(found[CAPACITY])
    return Row(
        "add_950",
        f"12b. Adding one event with {NEARLY_FULL} waiting: `Outbox.add` on a real file "
        f"({ADDS} adds a round, their median); and at the {CAPACITY:,} cap (the oldest dropped)",
        "<= 10 ms at any fill",
        f"{nearly.show(ms)} (max {ms(worst(found[NEARLY_FULL]))}); at the cap {full.show(ms)} "
        f"(max {ms(worst(found[CAPACITY]))})",
        f"`capture()`: {p50(plain).show(ms)} (a queue in memory: lost on a crash)",
        nearly.median <= ADD_TARGET and full.median <= ADD_TARGET,
        {str(fill): rounds for fill, rounds in found.items()} | {"plain": plain},
    )


# -- 12c: a 10,000-event file --------------------------------------------------------------


def figure_old_file(context: Context) -> Row:
    emptied: list[float | None] = []
    sending: list[float] = []
    right = 0
    for index in range(ROUNDS):
        with CaptureServer(ACCEPT) as server:
            took, span, counts_right = _old_file_round(context, server, index)
        emptied.append(took)
        sending.append(span)
        right += counts_right
    empty, send = Spread.of(emptied), Spread.of(sending)
    return Row(
        "old_file_10000",
        f"12c. A bot starts on a {OLD_FILE_EVENTS:,}-event outbox an older version left "
        "beside the config (taken over into the state folder): time from the process start "
        "to an empty outbox",
        f"trimmed to {CAPACITY:,} once, then sent as in 12a (<= {FLUSH_TARGET:g} s)",
        f"{empty.show(secs)}; sending (first to last request) {send.show(secs)}; "
        f"trimmed to {CAPACITY:,} and the rest delivered once {right}/{ROUNDS}",
        "n/a",
        send.median <= FLUSH_TARGET and right == ROUNDS,
        {"empty_s": list(empty.values), "sending_s": sending},
    )


def _old_file_round(
    context: Context, server: CaptureServer, index: int
) -> tuple[float | None, float, bool]:
    name = f"old-file-{index}"
    config = context.config(name)
    _work(
        context,
        server,
        f"{name}-write",
        "write-old",
        "--config",
        str(config),
        "--count",
        str(OLD_FILE_EVENTS),
    )
    host = BotHost(
        name, "ours", "default", config, context.slack_url, telemetry_env(server.url), context.logs
    )
    try:
        took = _wait_empty(host, config, OLD_FILE_CAP)
    finally:
        host.end()
    times = [request.received_at for request in server.requests if request.events]
    span = max(times) - min(times) if times else float("inf")
    dropped = outbox_dropped(config)
    # 9,000 trimmed, and maybe the oldest one more when the startup event came in.
    right = (
        OLD_FILE_EVENTS - CAPACITY <= dropped <= OLD_FILE_EVENTS - CAPACITY + 1
        and len(server.events) + dropped >= OLD_FILE_EVENTS
        and _duplicates(server) == 0
    )
    return took, span, right


def _wait_empty(host: BotHost, config: Path, timeout: float) -> float | None:
    """Seconds from the host's start until its outbox is empty and counts what it
    dropped; None after ``timeout``."""
    host.ready()
    emptied = wait_until(
        lambda: not outbox_events(config) and outbox_dropped(config) > 0, timeout, interval=0.05
    )
    return time.monotonic() - host.started_at if emptied else None
