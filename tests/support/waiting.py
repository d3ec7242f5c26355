"""Waiting for events, never for a fixed time: the one wait of the tests and the bench.

Every wait is bounded. ``wait_until`` polls a condition; given the ``threading.Condition``
that the thing watched notifies on each change (a process's output, a stand-in's
requests), it sleeps on that instead and wakes at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_TIMEOUT = 15.0
# With ``changed``: the longest sleep between two looks, for what changes without a
# notification (a process that ended, a file another process wrote).
_RECHECK_SECONDS = 0.2


def wait_until(
    condition: Callable[[], bool],
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
    *,
    changed: threading.Condition | None = None,
) -> bool:
    """Until ``condition()`` holds, at most ``timeout`` seconds; whether it held.

    Without ``changed`` it is polled every ``interval`` seconds. With ``changed`` it is
    evaluated holding that condition's lock, and looked at again whenever it is
    notified (and at least every 0.2 s)."""
    deadline = time.monotonic() + timeout
    if changed is None:
        while True:
            if condition():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
    with changed:
        while True:
            if condition():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            changed.wait(min(remaining, _RECHECK_SECONDS))


def within(deadline: float) -> float:
    """The longest "within ``deadline``" may take in a test on a loaded machine: the
    deadline twice, plus 2 s for a process to start and end. A test shows that waiting
    is bounded; how fast it is, is measured by the bench (ARCHITECTURE.md)."""
    return deadline * 2 + 2.0
