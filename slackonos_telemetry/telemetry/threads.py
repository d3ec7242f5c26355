"""Starting the plugin's threads so that they never take the host's signals.

The kernel delivers a signal sent to the process to any thread that does not
block it. Python runs the handler on the main thread in any case, but a main
thread blocked in a system call is only interrupted (and so only runs it at
once) when the signal lands on it. Our threads block SIGINT and SIGTERM, so they
never take one from the host's main thread.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

PREFIX = "slackonos-telemetry"
_BLOCKED = {signal.SIGINT, signal.SIGTERM}


def start_thread(target: Callable[..., Any], name: str, *args: Any) -> threading.Thread:
    """A daemon thread running ``target(*args)`` with SIGINT and SIGTERM blocked."""

    def run() -> None:
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
        target(*args)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
