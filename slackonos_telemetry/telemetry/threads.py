"""Starting the plugin's threads so that they never take the host's signals.

The kernel delivers a signal sent to the process to any thread that does not
block it. Python runs the handler on the main thread in any case, but a main
thread blocked in a system call is only interrupted (and so only runs it at
once) when the signal lands on it. Our threads block SIGINT and SIGTERM, so they
never take one from the host's main thread. A program started from one of them
would inherit that mask across exec, and ignore Ctrl-C: it is started with the
signals let through (``host_signals_let_through``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def host_signals_let_through() -> Iterator[None]:
    """Around starting a program from one of our threads (only that: a signal may land
    on this thread meanwhile, which only delays its handler on a busy main thread)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_UNBLOCK, _BLOCKED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
