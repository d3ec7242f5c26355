"""A fresh host process: what telemetry adds to a bot's start, or to its commands while the
tracker loads the posthog SDK in the background.

Run by the bench as ``python -m bench.hosts.startup --variant V --measure M``. The host has
slack_bolt imported and its App built (one ``ping`` listener) before the clock starts, as
a real bot has. Then, timed on the main thread (wall time and the thread's CPU time):

    import        ``import slackonos_telemetry`` alone
    register      ``import slackonos_telemetry`` + ``register(app, config_path=...)``
                  (with TELEMETRY_ENABLED=false from the bench: the disabled start)
    load_plugins  ``from slackonos_telemetry import load_plugins`` + ``load_plugins(app, ...)``
    scan          ``importlib.metadata.entry_points(group="slackonos.plugins")`` alone
    plain         ``import posthog`` + ``Posthog(key, host=url)``
    none          nothing

``--measure start`` stops there. ``--measure spread`` then sends a ``ping`` through
``app.dispatch`` every ``--every`` seconds for ``--window`` seconds, each timed until its
listener has answered (a chat.postMessage to the Slack stand-in), and notes after which
command ``posthog`` was first loaded. A command every 0.35 s leaves the bot quiet for
0.3 s between commands, when the tracker may start its import, so commands fall into it.

Prints one JSON line and leaves with os._exit (no shutdown to wait for).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

from bench.hosts.common import build_app, message_body, start_lifetime_cap

ENTRY_POINT_GROUP = "slackonos.plugins"


def way_in(variant: str, app: Any, config: str) -> Any:
    """What the variant adds to the host's start; returns what it made (kept alive)."""
    if variant == "import":
        import slackonos_telemetry

        return slackonos_telemetry
    if variant == "register":
        import slackonos_telemetry

        return slackonos_telemetry.register(app, config_path=config)
    if variant == "load_plugins":
        from slackonos_telemetry import load_plugins

        return load_plugins(app, config_path=config)
    if variant == "scan":
        from importlib.metadata import entry_points

        return list(entry_points(group=ENTRY_POINT_GROUP))
    if variant == "plain":
        from posthog import Posthog

        return Posthog(os.environ["TELEMETRY_API_KEY"], host=os.environ["TELEMETRY_HOST"])
    return None


def spread(app: Any, answered: threading.Semaphore, every: float, window: float) -> dict[str, Any]:
    began = time.perf_counter()
    latencies: list[float] = []
    posthog_after: int | None = None
    while time.perf_counter() - began < window:
        sent = time.perf_counter()
        app.dispatch(_request(len(latencies)))
        took = time.perf_counter() - sent if answered.acquire(timeout=10) else float("inf")
        latencies.append(took * 1000)
        if posthog_after is None and "posthog" in sys.modules:
            posthog_after = len(latencies)
        time.sleep(max(0.0, began + len(latencies) * every - time.perf_counter()))
    return {
        "latencies_ms": latencies,
        # The first command pays the host's own first-call costs: left out.
        "worst_ms": max(latencies[1:]),
        "posthog_loaded_after_command": posthog_after,
    }


def _request(number: int) -> Any:
    from slack_bolt import BoltRequest

    return BoltRequest(body=message_body("ping", number), mode="socket_mode")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--variant",
        choices=("import", "register", "load_plugins", "scan", "plain", "none"),
        required=True,
    )
    parser.add_argument("--measure", choices=("start", "spread"), default="start")
    parser.add_argument("--config", required=True)
    parser.add_argument("--slack-url", required=True)
    parser.add_argument("--every", type=float, default=0.35)
    parser.add_argument("--window", type=float, default=3.0)
    args = parser.parse_args()
    start_lifetime_cap()
    answered = threading.Semaphore(0)
    app = build_app(args.slack_url, answered.release)
    _request(0)  # BoltRequest's module loaded, as in a host that has served before

    began, began_cpu = time.perf_counter(), time.thread_time()
    made = way_in(args.variant, app, args.config)
    result: dict[str, Any] = {
        "variant": args.variant,
        "start_ms": (time.perf_counter() - began) * 1000,
        "start_cpu_ms": (time.thread_time() - began_cpu) * 1000,
    }
    if args.measure == "spread":
        result.update(spread(app, answered, args.every, args.window))
    del made
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
