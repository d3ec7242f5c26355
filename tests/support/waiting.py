"""Waiting for events, never for a fixed time: every wait is bounded and polls briefly."""

from __future__ import annotations

import time
from collections.abc import Callable

DEFAULT_TIMEOUT = 15.0


def wait_until(
    condition: Callable[[], bool], timeout: float = DEFAULT_TIMEOUT, interval: float = 0.02
) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def within(deadline: float) -> float:
    """The longest "within ``deadline``" may take in a test on a loaded machine: the
    deadline twice, plus 2 s for a process to start and end. A test shows that waiting
    is bounded; how fast it is, is measured by the bench (ARCHITECTURE.md)."""
    return deadline * 2 + 2.0
