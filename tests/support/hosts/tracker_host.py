"""A small bot stand-in for subprocess tests: a Tracker on a config file, hooked to shutdown.

    python tests/support/hosts/tracker_host.py --config PATH [--own exit3|print|ignore]
        [--own-signals TERM,INT] [--import-after S] [--retry-base S] [--retry-cap S]
        [--app-version V] [--log] [--file-size-limit BYTES] [--wall-clock-ahead S]

Settings come from the environment (TELEMETRY_*), as for a real bot. Before the
tracker, the host may install its own handler for SIGTERM/SIGINT (``--own``):
``exit3`` prints a ``handler`` line and calls ``sys.exit(3)``, ``print`` prints
the line and carries on, ``ignore`` sets SIG_IGN. With ``--log``, what the plugin logs
(warnings and above) goes to stderr, as a host's logging would send it; with
``--file-size-limit``, no file it writes may grow past BYTES (as on a full disk); with
``--wall-clock-ahead``, its wall clock (``time.time``) reads S seconds ahead, as after
a step of the machine's clock (its monotonic clock is left alone, as a step leaves it).

Stdout: ``ready`` once the tracker was started and hooked, then one JSON object
a line, each with a ``kind``. Stdin takes commands, one a line: ``ping``
(answers ``pong``), ``modules`` (what was imported, by which thread, and which
threads started subprocesses), ``joined`` (whether its tracker has joined the
instance), ``exit`` (a normal interpreter exit). The host ends by itself after
MAX_SECONDS whatever happens.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import resource
import select
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

MAX_SECONDS = 60.0
EXIT_OWN_HANDLER = 3
EXIT_TIMED_OUT = 4
EXIT_KEYBOARD_INTERRUPT = 130

_SIGNALS = {"TERM": signal.SIGTERM, "INT": signal.SIGINT}


class ImportRecorder:
    """A sys.meta_path finder that only notes which thread imported posthog first."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == "posthog":
            self.threads.append(threading.current_thread().name)
        return None


class SubprocessRecorder:
    """An audit hook noting which threads started a subprocess (git describe)."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "subprocess.Popen":
            self.threads.append(threading.current_thread().name)


IMPORTS = ImportRecorder()
POPENS = SubprocessRecorder()


def say(kind: str, **fields: Any) -> None:
    write_line(json.dumps({"kind": kind, **fields}))


def write_line(text: str) -> None:
    """One line on stdout in one write(2), through no buffer and no lock: the host's own
    signal handler says things too, and may run while the main thread is writing."""
    os.write(sys.stdout.fileno(), (text + "\n").encode())


def modules_report() -> dict[str, Any]:
    return {
        "posthog_loaded": "posthog" in sys.modules,
        "posthog_import_threads": list(IMPORTS.threads),
        "popen_threads": list(POPENS.threads),
        "main_thread": threading.main_thread().name,
        "monotonic": time.monotonic(),
    }


def own_handler(behaviour: str) -> Any:
    if behaviour == "ignore":
        return signal.SIG_IGN

    def handle(signum: int, frame: FrameType | None) -> None:
        say("handler", signal=signum, **modules_report())
        if behaviour == "exit3":
            sys.exit(EXIT_OWN_HANDLER)

    return handle


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--own", choices=("none", "exit3", "print", "ignore"), default="none")
    parser.add_argument("--own-signals", default="TERM,INT")
    parser.add_argument("--import-after", type=float, default=0.0)
    parser.add_argument("--retry-base", type=float, default=0.05)
    parser.add_argument("--retry-cap", type=float, default=0.3)
    parser.add_argument("--app-version", default=None)
    parser.add_argument("--log", action="store_true")
    parser.add_argument("--file-size-limit", type=int, default=None)
    parser.add_argument("--wall-clock-ahead", type=float, default=0.0)
    return parser.parse_args(argv)


def serve_stdin(deadline: float, tracker: Any) -> int:
    at_eof = False
    while (remaining := deadline - time.monotonic()) > 0:
        if at_eof:
            time.sleep(min(remaining, 0.1))
            continue
        readable, _, _ = select.select([sys.stdin], [], [], min(remaining, 0.5))
        if not readable:
            continue
        line = sys.stdin.readline()
        if not line:
            at_eof = True
            continue
        command = line.strip()
        if command == "ping":
            say("pong", pid=os.getpid())
        elif command == "modules":
            say("modules", **modules_report())
        elif command == "joined":
            say("joined", joined=tracker.session.joined)
        elif command == "exit":
            return 0
        elif command:
            say("unknown", command=command)
    say("timeout")
    return EXIT_TIMED_OUT


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.log:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.file_size_limit is not None:
        limit = args.file_size_limit
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    if args.wall_clock_ahead:
        wall_clock, ahead = time.time, args.wall_clock_ahead
        time.time = lambda: wall_clock() + ahead
    sys.meta_path.insert(0, IMPORTS)
    sys.addaudithook(POPENS)
    if args.own != "none":
        for name in filter(None, args.own_signals.split(",")):
            signal.signal(_SIGNALS[name], own_handler(args.own))
    # Registered before the tracker's hook, so it runs after it (atexit is LIFO).
    atexit.register(lambda: say("final", **modules_report()))

    from slackonos_telemetry.telemetry import shutdown
    from slackonos_telemetry.telemetry.delivery import RetryPolicy
    from slackonos_telemetry.telemetry.quiet import QuietGate
    from slackonos_telemetry.telemetry.tracker import Tracker

    before = {signum: signal.getsignal(signum) for signum in _SIGNALS.values()}
    tracker = Tracker(
        Path(args.config),
        app_version=args.app_version,
        retry_policy=RetryPolicy(args.retry_base, args.retry_cap),
        quiet=QuietGate(after_seconds=args.import_after),
    )
    tracker.start()
    shutdown.participate(tracker)
    shutdown.install()
    hooked = [signum for signum, handler in before.items() if signal.getsignal(signum) != handler]
    write_line("ready")
    say("hooked", signals=[signal.Signals(s).name for s in hooked], pid=os.getpid())
    try:
        return serve_stdin(time.monotonic() + MAX_SECONDS, tracker)
    except KeyboardInterrupt:
        say("keyboard-interrupt", **modules_report())
        return EXIT_KEYBOARD_INTERRUPT


if __name__ == "__main__":
    sys.exit(main())
