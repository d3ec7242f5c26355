"""Waiting on the main thread so that a signal is seen at once, whichever thread it lands on.

The kernel may deliver SIGTERM to any thread. Python runs its handler on the main
thread, but only once that thread runs again: one blocked in a lock, a read or a
sleep is not woken by a signal that landed elsewhere. ``signal.set_wakeup_fd``
makes the C-level handler write a byte to a pipe, whatever the thread, so a main
thread that waits in ``select()`` on that pipe wakes at once (asyncio does the same).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def wakeups() -> Iterator[int]:
    """A file descriptor that becomes readable when any signal arrives."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    os.set_blocking(read_end, False)
    previous = signal.set_wakeup_fd(write_end)
    try:
        yield read_end
    finally:
        signal.set_wakeup_fd(previous)
        os.close(read_end)
        os.close(write_end)


def wait_for(stop: threading.Event) -> None:
    """Until ``stop`` is set (by a signal handler, or another thread)."""
    with wakeups() as wakeup:
        while not stop.is_set():
            # Bounded: another thread may set ``stop`` without any signal.
            if select.select([wakeup], [], [], 0.5)[0]:
                _drain(wakeup)


def readable(fd: int, wakeup: int) -> bool:
    """Block until ``fd`` can be read (True) or a signal arrived (False; its Python
    handler runs as soon as this returns)."""
    while True:
        ready = select.select([fd, wakeup], [], [])[0]
        if wakeup in ready:
            _drain(wakeup)
            return False
        if fd in ready:
            return True


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 512):
            pass
