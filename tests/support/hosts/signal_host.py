"""A Bolt bot with the plugin registered, waiting for signals: with the default actions
(SIGTERM ends the process, SIGINT raises KeyboardInterrupt), or with its own handlers
(for both, or for ``--own-signals TERM`` only), installed before the plugin as a bot
does (``--own exit3``: print a ``handler`` line, then ``sys.exit(3)``).

    python -m tests.support.hosts.signal_host --config PATH [--own none|exit3]
        [--own-signals TERM,INT]

Stdout: ``ready`` (a JSON line, with the pid) once registered, then the host's own lines.
Its main thread waits on stdin as a server's poll loop does (``exit`` ends it); it ends
by itself after MAX_SECONDS. Logging as in ``fork_host`` (pid on every line).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence

from tests.support.hosts.fork_host import (
    MAX_SECONDS,
    log_with_pids,
    own_handlers,
    plugged_app,
    say,
    serve,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--own", choices=("none", "exit3"), default="none")
    parser.add_argument("--own-signals", default="TERM,INT")
    args = parser.parse_args(argv)

    log_with_pids()
    own_handlers(args.own, [signal.Signals[f"SIG{name}"] for name in args.own_signals.split(",")])
    deadline = time.monotonic() + MAX_SECONDS
    plugged_app(args.config)
    say("ready")
    return serve(deadline)


if __name__ == "__main__":
    sys.exit(main())
