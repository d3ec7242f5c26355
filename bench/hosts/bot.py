"""A bench host: a Bolt bot that idles, with our plugin, the plain posthog SDK, or neither.

Started by bench/run.py as a subprocess. It speaks a tiny line protocol:

stdout (written with os.write, safe from signal handlers and any thread):
    READY                    the host is built and idling
    MADE <uuid> <event>      a telemetry event was made (ours: handed to the outbox;
                             plain: handed to the SDK)
    URL <url>                (--http) where the Bolt app listens
    CPU <seconds>            answer to ``cpu``: time.process_time() of the whole process
    STATUS <json>            answer to ``status N``: timings of plugin.commands.status()

stdin:
    cpu                      report CPU time used so far
    status N                 build the status N times in-process, report p50/p99/max
    EOF                      exit normally (ours: the atexit hook sends shutdown)

Every host stops by itself: EOF on stdin ends it, and a hard lifetime cap
(BENCH_HOST_LIFETIME seconds, default 400) ends it with os._exit whatever happens.

Kinds:
    ours      App + ``slackonos_telemetry.register(app, config_path=...)``
    tracker   ``Tracker(config_path)`` + ``install_shutdown_hooks(tracker.shutdown)``
    plain     App + ``Posthog(key, host=url)`` (default async client): capture startup,
              a heartbeat every BENCH_HEARTBEAT_SECONDS if set, and on SIGTERM capture
              shutdown, ``client.shutdown()``, exit
    none      App only, no telemetry at all
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

DEFAULT_LIFETIME_SECONDS = 400.0


def emit(line: str) -> None:
    """One line on stdout without Python's buffered writer (re-entrancy safe)."""
    data = (line + "\n").encode()
    while data:
        try:
            written = os.write(1, data)
        except InterruptedError:
            continue
        except OSError:
            return  # the bench went away: nothing to tell
        data = data[written:]


def start_lifetime_cap() -> None:
    seconds = float(os.environ.get("BENCH_HOST_LIFETIME", DEFAULT_LIFETIME_SECONDS))
    timer = threading.Timer(seconds, lambda: os._exit(4))
    timer.daemon = True
    timer.start()


def build_app(slack_url: str, signing_secret: str) -> Any:
    from slack_bolt import App
    from slack_sdk import WebClient

    app = App(
        client=WebClient(token="xoxb-bench", base_url=slack_url),
        signing_secret=signing_secret,
        token_verification_enabled=False,
    )

    @app.message("ping")
    def ping(say: Callable[..., Any]) -> None:
        say(text="pong")

    return app


def record_made_events() -> None:
    """Print every event the tracker makes, before it goes to the outbox."""
    from slackonos_telemetry.telemetry.outbox import Outbox

    original = Outbox.add

    def add(self: Outbox, event: dict[str, Any], *args: Any, **kwargs: Any) -> bool:
        emit(f"MADE {event.get('uuid')} {event.get('event')}")
        return original(self, event, *args, **kwargs)

    Outbox.add = add  # type: ignore[method-assign]


def run_ours(args: argparse.Namespace) -> Any:
    record_made_events()
    app = build_app(args.slack_url, args.signing_secret)
    import slackonos_telemetry

    plugin = slackonos_telemetry.register(app, config_path=args.config)
    if args.http:
        from slackonos_telemetry.run.http_server import BoltHttpServer

        server = BoltHttpServer(app, "127.0.0.1", 0)
        server.start()
        emit(f"URL {server.url}")
    return plugin


def run_tracker(args: argparse.Namespace) -> None:
    record_made_events()
    from slackonos_telemetry.telemetry.shutdown import install_shutdown_hooks
    from slackonos_telemetry.telemetry.tracker import Tracker

    tracker = Tracker(Path(args.config))
    tracker.start()
    install_shutdown_hooks(tracker.shutdown)


def run_plain(args: argparse.Namespace) -> None:
    build_app(args.slack_url, args.signing_secret)
    from posthog import Posthog

    host = os.environ["TELEMETRY_HOST"]
    api_key = os.environ.get("TELEMETRY_API_KEY", "phc_bench")
    client = Posthog(api_key, host=host)
    distinct_id = str(uuid.uuid4())
    started = time.monotonic()
    guard = threading.Lock()

    def capture(name: str) -> None:
        event_uuid = str(uuid.uuid4())
        properties = {"uptime_hours": int((time.monotonic() - started) // 3600)}
        with guard:
            client.capture(name, distinct_id=distinct_id, properties=properties, uuid=event_uuid)
        emit(f"MADE {event_uuid} {name}")

    capture("startup")
    heartbeat = float(os.environ.get("BENCH_HEARTBEAT_SECONDS") or 0)
    if heartbeat > 0:

        def beat() -> None:
            next_beat = started + heartbeat
            while True:
                time.sleep(max(0.0, next_beat - time.monotonic()))
                next_beat += heartbeat
                capture("heartbeat")

        threading.Thread(target=beat, daemon=True).start()

    def on_term(signum: int, frame: FrameType | None) -> None:
        capture("shutdown")
        client.shutdown()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)


def status_timings(plugin: Any, count: int) -> dict[str, float]:
    durations: list[float] = []
    for _ in range(count):
        began = time.perf_counter()
        plugin.commands.status()
        durations.append(time.perf_counter() - began)
    durations.sort()
    return {
        "count": float(count),
        "p50_ms": durations[len(durations) // 2] * 1000,
        "p99_ms": durations[min(len(durations) - 1, int(len(durations) * 0.99))] * 1000,
        "max_ms": durations[-1] * 1000,
    }


def serve_stdin(plugin: Any) -> None:
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        words = line.split()
        if not words:
            continue
        if words[0] == "cpu":
            emit(f"CPU {time.process_time()!r}")
        elif words[0] == "status" and plugin is not None:
            count = int(words[1]) if len(words) > 1 else 100
            emit("STATUS " + json.dumps(status_timings(plugin, count)))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("ours", "tracker", "plain", "none"), required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--slack-url", required=True)
    parser.add_argument("--signing-secret", default="bench-signing-secret")
    parser.add_argument("--http", action="store_true")
    args = parser.parse_args()
    start_lifetime_cap()
    plugin: Any = None
    if args.kind == "ours":
        plugin = run_ours(args)
    elif args.kind == "tracker":
        run_tracker(args)
    elif args.kind == "plain":
        run_plain(args)
    else:
        build_app(args.slack_url, args.signing_secret)
    emit("READY")
    serve_stdin(plugin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
