"""Living in the host's process across ``os.fork()``: the two tools every part uses.

A fork copies memory but no threads (gunicorn ``--preload``, multiprocessing, a host's
own ``os.fork()``). In the child, a lock one of our threads held at that moment stays
held forever, and a module one of our threads was importing stays locked forever
(CPython re-initialises only the global import lock, not the per-module ones).

- ``PerProcess``: an object made anew in each process that uses it, found by a pid
  check, as sentry-python's ``BackgroundWorker`` does. Every part that owns threads,
  locks or open files keeps them in one, so a child never touches what the parent's
  threads may hold, and the parent goes on unchanged.
- ``importing()``: marks a deferred import made by code of ours. A before-fork hook
  waits, bounded, while one is under way, so no child starts with one of those
  modules half-imported.
- ``hold_signals_across_fork()``: signals the forking thread blocks from the last
  before-fork hook until, in the child, the host's handlers are back
  (``release_held_signals()``, called by the hook that puts them back) and, in the
  parent, the fork has returned. Without it a SIGTERM that reaches a child in its
  first moments trips the Python handler the child inherited, which the child then
  replaces by SIG_DFL, and CPython drops it: the child lives on (a pool worker that
  ``Pool.terminate()`` then waits for forever). Blocked, it waits in the kernel and
  the restored action takes it.

The at-fork hooks here import nothing, wait on no lock and touch no file: the
before-hook polls a set with short sleeps, the child-hook only makes a new lock,
the signal hooks only set the thread's signal mask.
This module is a leaf: anything of ours may import it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

# Longer than a cold import of the posthog SDK on a loaded machine (0.3-2 s seen); a
# fork is never held back longer than this, whatever our threads do.
FORK_WAIT_SECONDS = 5.0
_POLL_SECONDS = 0.002

# Threads (by ident) inside importing(); set.add/discard are atomic under the GIL, so
# the before-fork hook can read it without a lock.
_importers: set[int] = set()
# Guards the first use of a PerProcess in a process. Re-entrant: a maker may use
# another PerProcess. Replaced, never acquired, in a forked child.
_guard = threading.RLock()


class PerProcess(Generic[T]):
    """The value ``make()`` returns, made once in each process that asks for it.

    ``make`` must be cheap (a dict, a lock, a small object): it runs under a
    process-wide guard the first time a process asks.
    """

    __slots__ = ("_make", "_pid", "_value")

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._pid = -1
        self._value: T | None = None

    def get(self) -> T:
        pid = os.getpid()
        if self._pid == pid:
            return self._value  # type: ignore[return-value]
        with _guard:
            if self._pid != pid:
                self._value = self._make()
                self._pid = pid
            return self._value  # type: ignore[return-value]


@contextlib.contextmanager
def importing() -> Iterator[None]:
    """Around a deferred import of ours: a fork meanwhile waits for it to finish."""
    ident = threading.get_ident()
    if ident in _importers:  # nested
        yield
        return
    _importers.add(ident)
    try:
        yield
    finally:
        _importers.discard(ident)


def _wait_for_imports_before_fork() -> None:
    if not _importers or threading.get_ident() in _importers:
        return
    deadline = time.monotonic() + FORK_WAIT_SECONDS
    while _importers and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)


def _new_guard_in_child() -> None:
    global _guard
    _guard = threading.RLock()
    # The parent's importing threads do not exist here.
    _importers.clear()


# Signals to hold across a fork (added by shutdown.install), and each forking thread's
# signal mask from before it blocked them, by thread ident (a dict: two threads may
# fork at once; one step each under the GIL, no lock).
_held_signals: set[int] = set()
_masks_before_fork: dict[int, set[int | signal.Signals]] = {}


def hold_signals_across_fork(signums: Iterable[int]) -> None:
    """Block ``signums`` in the forking thread across every fork from now on; the child
    gets them back from ``release_held_signals()``."""
    if hasattr(signal, "pthread_sigmask"):
        _held_signals.update(signums)


def release_held_signals() -> None:
    """In a forked child, once the host's handlers are back: the mask from before the
    fork, and any signal that arrived meanwhile delivered to them."""
    mask = _masks_before_fork.pop(threading.get_ident(), None)
    _masks_before_fork.clear()
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _block_held_signals_before_fork() -> None:
    if _held_signals:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _held_signals)
        _masks_before_fork[threading.get_ident()] = mask


def _unblock_in_parent() -> None:
    mask = _masks_before_fork.pop(threading.get_ident(), None)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


if hasattr(os, "register_at_fork"):
    # Before-hooks run in reverse order of registration: signals are blocked last,
    # after the wait for imports, which a signal may still interrupt.
    os.register_at_fork(before=_block_held_signals_before_fork, after_in_parent=_unblock_in_parent)
    os.register_at_fork(before=_wait_for_imports_before_fork, after_in_child=_new_guard_in_child)
