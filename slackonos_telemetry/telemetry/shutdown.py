"""Shutdown: on SIGINT, SIGTERM and interpreter exit, every participant (a tracker, a plugin)
gets to finish, all at once, within one deadline for the whole process.

Installed once per process, however many apps register: the deadline is
TELEMETRY_SHUTDOWN_TIMEOUT for the process, never per app.

How each signal is chained, so that the host stops exactly as it would without us:
- a handler the host installed: ours runs, then calls it (it decides how to exit);
- the default action: ours runs, then puts it back and raises the signal again,
  and the kernel ends the process with the signal's status;
- Python's own SIGINT handler is left alone: KeyboardInterrupt unwinds the host
  with its usual traceback, and the exit hook sends the shutdown event;
- a signal the host ignores stays ignored.

This module is imported by ``register()`` on the host's main thread: it is light.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Any, Protocol

from slackonos_telemetry.config.words import shutdown_timeout_from
from slackonos_telemetry.telemetry.threads import start_thread

log = logging.getLogger(__name__)

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)
THREAD_NAME = "slackonos-telemetry-shutdown"


class Participant(Protocol):
    def stop_for_exit(self, deadline: float, how: str) -> bool:
        """Finish within ``deadline`` (monotonic); ``how``: "signal", "explicit" or "exit".
        True when everything was delivered. Never raises."""
        ...


class _Round:
    """One shutdown: its deadline, and what each participant achieved by then."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.done = threading.Event()
        self.results: list[bool] = []


class _Shutdown:
    def __init__(self) -> None:
        self._participants: list[Participant] = []
        self._stopped: set[int] = set()
        self._round: _Round | None = None
        self._guard = threading.Lock()
        self._installed = False

    def participate(self, participant: Participant) -> None:
        with self._guard:
            if all(existing is not participant for existing in self._participants):
                self._participants.append(participant)

    def install(self) -> None:
        """Hook interpreter exit and, from the main thread, the signals. Once per process."""
        with self._guard:
            if self._installed:
                return
            self._installed = True
        atexit.register(self.run, "exit")
        if threading.current_thread() is not threading.main_thread():
            log.debug("not on the main thread: shutdown hooked to interpreter exit only")
            return
        for signum in SHUTDOWN_SIGNALS:
            previous = signal.getsignal(signum)
            if previous in (signal.SIG_IGN, signal.default_int_handler):
                continue
            signal.signal(signum, _chained(signum, previous))

    def run(self, how: str = "explicit", timeout: float | None = None) -> bool:
        """Stop every participant not yet stopped, in parallel, within one deadline
        (``timeout``, default TELEMETRY_SHUTDOWN_TIMEOUT). A call while a round is
        under way waits for that round. Never raises; True when all delivered."""
        try:
            with self._guard:
                current = self._round
                if current is None or current.done.is_set():
                    waiting = [p for p in self._participants if id(p) not in self._stopped]
                    if not waiting:
                        return True
                    current = self._round = _Round(time.monotonic() + _timeout(timeout))
                    self._stopped.update(id(p) for p in waiting)
                    self._start(current, waiting, how)
            current.done.wait(max(0.0, current.deadline - time.monotonic()))
            return current.done.is_set() and all(current.results)
        except Exception:
            log.exception("telemetry shutdown failed; the bot is not affected")
            return False

    def _start(self, current: _Round, waiting: list[Participant], how: str) -> None:
        # Threads of their own: the main thread (often inside a signal handler) only
        # waits, with a timeout, and never re-enters a lock it may hold.
        remaining = [len(waiting)]
        count_guard = threading.Lock()

        def stop(participant: Participant) -> None:
            try:
                current.results.append(participant.stop_for_exit(current.deadline, how))
            except Exception:
                log.exception("telemetry shutdown failed; the bot is not affected")
                current.results.append(False)
            finally:
                with count_guard:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        current.done.set()

        for participant in waiting:
            try:
                start_thread(stop, THREAD_NAME, participant)
            except RuntimeError:  # threads can no longer start this late in exit
                stop(participant)

    def reset_after_fork(self) -> None:
        # The child stops on its own: every participant, once, in its own round.
        self._stopped = set()
        self._round = None
        self._guard = threading.Lock()


_shutdown = _Shutdown()
participate = _shutdown.participate
install = _shutdown.install
run = _shutdown.run
reset_after_fork = _shutdown.reset_after_fork


def _chained(signum: signal.Signals, previous: Any) -> Any:
    def handle(received: int, frame: FrameType | None) -> None:
        try:
            _shutdown.run("signal")
        except Exception:  # never let telemetry decide how the bot stops
            log.exception("telemetry shutdown failed")
        if callable(previous):
            # Called, not re-raised: a re-raised signal would wait, unhandled, for as
            # long as the main thread blocks (a lock, select, readline).
            previous(received, frame)
            return
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    return handle


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        return max(0.0, timeout)
    return shutdown_timeout_from(os.environ)
