"""Run a callback on SIGINT, SIGTERM and normal interpreter exit, then let the host decide.

Our handler runs first, then the handler that was there before us: the host's
own (which decides whether and how to exit), Python's KeyboardInterrupt for
SIGINT, or the default action, re-raised so the exit status is the signal's.
A signal the host ignores stays ignored: the process is not stopping.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def install_shutdown_hooks(on_shutdown: Callable[[], object]) -> list[signal.Signals]:
    """Hook ``on_shutdown`` (idempotent, never raising) to exit and the signals.

    Signal handlers can only be set from the main thread; from elsewhere only
    the exit hook is installed. Returns the signals hooked.
    """
    atexit.register(on_shutdown)
    if threading.current_thread() is not threading.main_thread():
        log.debug("not on the main thread: shutdown hooked to interpreter exit only")
        return []
    hooked = []
    for signum in SHUTDOWN_SIGNALS:
        previous = signal.getsignal(signum)
        if previous == signal.SIG_IGN:
            continue
        signal.signal(signum, _chained(signum, previous, on_shutdown))
        hooked.append(signum)
    return hooked


def _chained(
    signum: signal.Signals, previous: Handler, on_shutdown: Callable[[], object]
) -> Callable[[int, FrameType | None], None]:
    def handle(received: int, frame: FrameType | None) -> None:
        try:
            on_shutdown()
        except Exception:  # never let telemetry decide how the bot stops
            log.exception("telemetry shutdown failed")
        if callable(previous):
            previous(received, frame)
            return
        # The default action: put it back and raise the signal again, so the
        # process ends exactly as it would have without us.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    return handle
