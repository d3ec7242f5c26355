"""A bench host: a Bolt bot that idles, with our plugin, the plain posthog SDK, or neither.

Run by the bench as ``python -m bench.hosts.bot``. Its stdout lines:

    URL <url>             (--http) where the Bolt app listens, on 127.0.0.1
    READY                 the host is built and idling
    MADE <uuid> <event>   a telemetry event was made (ours: stored in the outbox;
                          plain: handed to the SDK)
    CPU <json>            answer to ``cpu``: CPU seconds so far
    FILES <json>          answer to ``files`` (--count-files): parses and writes per file

``--every-message`` adds a listener for every message but ``ping`` (see ``build_app``).

EOF on stdin ends it normally; a lifetime cap (BENCH_HOST_LIFETIME) ends it whatever happens.

Kinds (``--kind``):
    ours    App + ``slackonos_telemetry.register(app, config_path=...)``
    plain   App + ``Posthog(key, host=...)`` (the SDK's default client): ``startup`` at
            start, a ``heartbeat`` every BENCH_HEARTBEAT_SECONDS if set, ``shutdown``
            on SIGTERM
    none    App only

How SIGTERM ends it (``--exit-style``), the same for every kind:
    default   the signal's default action: no Python clean-up. Ours: the plugin's
              handler sends the shutdown event and re-raises the signal. Plain: the
              host's handler captures ``shutdown``, calls ``client.shutdown()`` and
              re-raises the signal with its default action.
    sys-exit  the host's own handler calls ``sys.exit(0)`` (installed before the
              plugin, which chains to it). Plain: capture, ``client.shutdown()``, exit.
    atexit    plain only: capture ``shutdown`` and ``sys.exit(0)``; the SDK's own exit
              hook sends what is queued.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from bench.hosts.common import (
    build_app,
    cpu_report,
    emit,
    emit_json,
    serve_commands,
    start_lifetime_cap,
)


def record_made_events() -> None:
    """Print every event the plugin stores in its outbox, as it stores it."""
    from slackonos_telemetry.telemetry.outbox import OutboxTransaction

    original = OutboxTransaction.add

    def add(self: OutboxTransaction, event: Any) -> None:
        original(self, event)
        emit(f"MADE {event.get('uuid')} {event.get('event')}")

    OutboxTransaction.add = add  # type: ignore[method-assign]


class FileCounts:
    """How often each file is parsed (a parse-cache miss) and written, by file name."""

    def __init__(self) -> None:
        self.parses: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self._guard = threading.Lock()

    def install(self) -> None:
        # Both of the files counted (the config, the outbox) are written by the TinyDB
        # storages, through the name ``replace_file`` they import.
        from slackonos_telemetry.config import storages
        from slackonos_telemetry.config.filecache import ParsedFileCache

        original_load = ParsedFileCache.load
        original_write = storages.replace_file  # type: ignore[attr-defined]

        def load(cache: ParsedFileCache, path: Path, parse: Any, variant: Any = None) -> Any:
            def counted() -> Any:
                with self._guard:
                    self.parses[Path(path).name] += 1
                return parse()

            return original_load(cache, path, counted, variant)

        def write(path: Path, text: str, *, own: bool = False) -> None:
            original_write(path, text, own=own)
            with self._guard:
                self.writes[Path(path).name] += 1

        ParsedFileCache.load = load  # type: ignore[method-assign, assignment]
        storages.replace_file = write  # type: ignore[attr-defined]

    def report(self) -> dict[str, dict[str, int]]:
        with self._guard:
            return {"parses": dict(self.parses), "writes": dict(self.writes)}


def exit_on_sigterm(before_exit: Any = None) -> None:
    """The host's own SIGTERM handler: ``before_exit()``, then ``sys.exit(0)``."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        if before_exit is not None:
            before_exit()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)


def run_ours(args: argparse.Namespace, app: Any) -> None:
    record_made_events()
    if args.exit_style == "sys-exit":
        exit_on_sigterm()  # before register: the plugin's handler chains to it
    import slackonos_telemetry

    slackonos_telemetry.register(app, config_path=args.config)


def run_plain(args: argparse.Namespace) -> None:
    from posthog import Posthog

    client = Posthog(os.environ["TELEMETRY_API_KEY"], host=os.environ["TELEMETRY_HOST"])
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

    def shut_down() -> None:
        capture("shutdown")
        if args.exit_style != "atexit":
            client.shutdown()

    if args.exit_style == "default":

        def on_term(signum: int, frame: FrameType | None) -> None:
            shut_down()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_term)
    else:
        exit_on_sigterm(shut_down)


def serve_http(app: Any) -> None:
    from slackonos_telemetry.run.http_server import BoltHttpServer

    server = BoltHttpServer(app, "127.0.0.1", 0)  # TCP_NODELAY, threads of its own
    server.start()
    emit(f"URL {server.url}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("ours", "plain", "none"), required=True)
    parser.add_argument("--exit-style", choices=("default", "sys-exit", "atexit"), required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--slack-url", required=True)
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--count-files", action="store_true")
    parser.add_argument("--every-message", action="store_true")
    args = parser.parse_args()
    start_lifetime_cap()
    counts = FileCounts()
    if args.count_files:
        counts.install()
    app = build_app(args.slack_url, every_message=args.every_message)
    if args.kind == "ours":
        run_ours(args, app)
    elif args.kind == "plain":
        run_plain(args)
    elif args.exit_style == "sys-exit":
        exit_on_sigterm()
    if args.http:
        serve_http(app)
    emit("READY")

    def handle(words: list[str]) -> None:
        if words[0] == "cpu":
            emit_json("CPU", cpu_report())
        elif words[0] == "files":
            emit_json("FILES", counts.report())

    serve_commands(handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
