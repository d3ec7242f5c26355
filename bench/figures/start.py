"""What telemetry costs a bot as it starts: time on the host's main thread for each way in,
process CPU and memory in the first 5 s, and the host's commands while the tracker
loads the posthog SDK in the background."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.common import (
    ROUNDS,
    Context,
    Row,
    Spread,
    mib,
    ms,
    telemetry_env,
)
from bench.processes import BotHost, delivered, run_json
from tests.support.capture import ACCEPT, CaptureServer

START_VARIANTS = ("register", "disabled", "import", "load_plugins", "scan", "plain")
FIRST_SECONDS = 5.0
SPREAD_EVERY = 0.35
SPREAD_WINDOW = 2.5
COMMAND_TARGET = 0.025


def _startup(
    context: Context, server: CaptureServer, variant: str, name: str, *args: str
) -> dict[str, Any]:
    """One fresh ``bench.hosts.startup`` process; its JSON."""
    extra = {"TELEMETRY_ENABLED": "false"} if variant == "disabled" else {}
    config = context.config(name)
    argv = [
        "-m",
        "bench.hosts.startup",
        "--variant",
        "register" if variant == "disabled" else variant,
        "--config",
        str(config),
        "--slack-url",
        context.slack_url,
        *args,
    ]
    return run_json(name, argv, telemetry_env(server.url, **extra), context.logs)


# -- figure 7: start cost, each way in -----------------------------------------------------


def figure_start(context: Context) -> list[Row]:
    runs = context.plan.starts_per_round
    found: dict[str, list[list[dict[str, Any]]]] = {variant: [] for variant in START_VARIANTS}
    with CaptureServer(ACCEPT) as server:
        for variant in START_VARIANTS:  # untimed: every module it loads is compiled
            _startup(context, server, variant, f"start-warm-{variant}")
        for index in range(ROUNDS):
            for variant in START_VARIANTS:
                found[variant].append(
                    [
                        _startup(context, server, variant, f"start-{variant}-{index}-{run}")
                        for run in range(runs)
                    ]
                )

    def spread(variant: str, key: str = "start_ms") -> Spread:
        # A round: the median of its processes. Milliseconds in, seconds out.
        return Spread.of(
            statistics.median(float(result[key]) for result in results) / 1000
            for results in found[variant]
        )

    def cell(variant: str) -> str:
        cpu = spread(variant, "start_cpu_ms")
        return f"{spread(variant).show(ms)} (main-thread CPU {cpu.show(ms)})"

    each = f"{ROUNDS} rounds, each the median of {runs} fresh process{'es' if runs > 1 else ''}"
    plain = f"{cell('plain')}: `import posthog` + `Posthog()`"
    enabled, disabled = spread("register"), spread("disabled")
    numbers = {variant: found[variant] for variant in START_VARIANTS}
    return [
        Row(
            "start_enabled",
            "7a. Start time added on the main thread: `import` + `register(app)`, enabled "
            f"({each})",
            "<= 5 ms",
            cell("register"),
            plain,
            enabled.median <= 0.005,
            numbers,
        ),
        Row(
            "start_disabled",
            "7b. The same with TELEMETRY_ENABLED=false",
            "<= 5 ms",
            cell("disabled"),
            f"{plain} (no cheaper off switch)",
            disabled.median <= 0.005,
        ),
        Row(
            "start_load_plugins",
            "7c. Each way in, enabled: `load_plugins(app)` (the entry-point scan comes on "
            "top of `register`), and `import slackonos_telemetry` alone",
            "report",
            f"`load_plugins(app)` {cell('load_plugins')}; the scan alone "
            f"(`entry_points(group=...)`): {spread('scan').show(ms)}; the import alone: "
            f"{spread('import').show(ms)}",
            f"`register(app)`: {enabled.show(ms)}",
            None,
        ),
    ]


# -- figure 8: CPU and memory in the first 5 s ---------------------------------------------


def figure_first_seconds(context: Context) -> list[Row]:
    """Per round, four hosts started together: ours, ours disabled, the plain SDK, none;
    each measured 5 s after it was started. ``--quick`` starts every round at once (CPU
    time and memory hardly depend on what else runs)."""
    kinds = {"ours": {}, "disabled": {"TELEMETRY_ENABLED": "false"}, "plain": {}, "none": {}}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    rss: dict[str, list[float]] = {kind: [] for kind in kinds}
    sent = 0
    rounds = list(range(ROUNDS))
    batches = [rounds] if context.plan.quick else [[index] for index in rounds]
    with CaptureServer(ACCEPT) as server:
        for batch in batches:
            hosts = {
                (kind, index): BotHost(
                    f"first-{kind}-{index}",
                    "ours" if kind == "disabled" else kind,
                    "default",
                    context.config(f"first-{kind}-{index}"),
                    context.slack_url,
                    telemetry_env(server.url, **env),
                    context.logs,
                )
                for index in batch
                for kind, env in kinds.items()
            }
            for (kind, _), host in hosts.items():
                time.sleep(max(0.0, host.started_at + FIRST_SECONDS - time.monotonic()))
                cpu[kind].append(host.cpu_seconds())
                rss[kind].append(float(host.rss_bytes()))
            sent += sum(
                delivered(host, server, "startup")
                for (kind, _), host in hosts.items()
                if kind == "ours"
            )
            for host in hosts.values():
                host.end()
    added = {
        kind: Spread.of(size - bare for size, bare in zip(rss[kind], rss["none"], strict=True))
        for kind in ("ours", "disabled", "plain")
    }
    spread = {kind: Spread.of(values) for kind, values in cpu.items()}

    def cpu_cell(kind: str) -> str:
        more = spread[kind].median - spread["none"].median
        return f"{spread[kind].show(ms)} ({ms(more)} over no telemetry)"

    return [
        Row(
            "cpu_first_5s",
            f"8a. Process CPU in the first {FIRST_SECONDS:g} s from the process start "
            "(interpreter, Bolt, telemetry, the startup event sent)",
            "report",
            f"{cpu_cell('ours')}; startup delivered {sent}/{ROUNDS}; "
            f"disabled {cpu_cell('disabled')}",
            f"{cpu_cell('plain')}; no telemetry {spread['none'].show(ms)}",
            None,
            {"cpu_s": cpu},
        ),
        Row(
            "memory_added",
            f"8b. Memory added: RSS {FIRST_SECONDS:g} s after start, over a host with no telemetry",
            "report",
            f"enabled {added['ours'].show(mib)}; disabled {added['disabled'].show(mib)}",
            added["plain"].show(mib),
            None,
            {"rss_bytes": rss},
        ),
    ]


# -- figure 9: host commands while posthog loads -------------------------------------------


def figure_import_window(context: Context) -> Row:
    worst: dict[str, list[float]] = {"register": [], "none": []}
    caught = 0
    runs: list[dict[str, Any]] = []
    # --quick measures the baseline (no telemetry) once.
    baseline_rounds = 1 if context.plan.quick else ROUNDS
    with CaptureServer(ACCEPT) as server:
        for index in range(ROUNDS):
            for variant in worst if index < baseline_rounds else ["register"]:
                result = _startup(
                    context,
                    server,
                    variant,
                    f"spread-{variant}-{index}",
                    "--measure",
                    "spread",
                    "--every",
                    str(SPREAD_EVERY),
                    "--window",
                    str(SPREAD_WINDOW),
                )
                worst[variant].append(float(result["worst_ms"]) / 1000)
                runs.append(result)
                caught += (
                    variant == "register" and result["posthog_loaded_after_command"] is not None
                )
    ours, bare = Spread.of(worst["register"]), Spread.of(worst["none"])
    return Row(
        "import_window",
        f"9. Worst host command (after the first) while the tracker loads posthog in the "
        f"background: a `ping` every {SPREAD_EVERY:g} s for {SPREAD_WINDOW:g} s from the start",
        "<= 25 ms",
        f"{ours.show(ms)}; posthog loaded within the window {caught}/{ROUNDS}",
        f"no telemetry {bare.show(ms)}",
        ours.median <= COMMAND_TARGET and caught == ROUNDS,
        {"runs": runs},
    )
