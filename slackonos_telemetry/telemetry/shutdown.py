"""Shutdown: on SIGINT, SIGTERM and interpreter exit, every participant (a tracker, a
plugin) gets to finish, all at once, within one deadline for the whole process.

Installed once per process, however many apps register: the deadline is
TELEMETRY_SHUTDOWN_TIMEOUT for the process, never per app.

Safe to re-enter, by construction. A signal handler runs on the main thread between any
two bytecodes, also in the middle of code that holds a lock (ours, or threading's own
when a thread starts), the handler itself included. So the handler takes no lock and
starts no thread: it wakes this process's stopper thread (started at install, blocked on
a pipe) with one ``os.write``, then waits in ``select()`` on a second pipe, which the
stopper writes to when its round is done, never past the deadline. The stopper claims
each participant with one atomic ``dict.setdefault`` and stops them in parallel, each on
a thread of its own. A signal that arrives while our handler runs is absorbed (the outer
call finishes the job), also a SIGINT whose handler is Python's own (its
KeyboardInterrupt is caught there); any number of SIGTERM and SIGINT end the process
within the deadline.

How each signal is chained, so that the host stops exactly as it would without us:
- a handler the host installed: ours runs, then calls it (it decides how to exit);
- the default action: ours runs, then puts it back and raises the signal again,
  and the kernel ends the process with the signal's status;
- Python's own SIGINT handler is left alone: KeyboardInterrupt unwinds the host
  with its usual traceback, and the exit hook sends the shutdown event;
- a signal the host ignores stays ignored.

In a process forked from ours (a host's pool worker), the host's own handlers are
put back at the fork and our exit hook does nothing: the child dies of SIGTERM
exactly as it would without the plugin, and never runs our shutdown. The signals are
held (blocked) across the fork until then (``forksafe.hold_signals_across_fork``): one
that reached the child before its handlers were back would otherwise be lost.

This module is imported by ``register()`` on the host's main thread: it is light.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import select
import signal
import threading
import time
from types import FrameType
from typing import Any, Protocol

from slackonos_telemetry.config.words import shutdown_timeout_from
from slackonos_telemetry.forksafe import PerProcess, hold_signals_across_fork, release_held_signals
from slackonos_telemetry.telemetry.threads import start_thread

log = logging.getLogger(__name__)

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)
THREAD_NAME = "slackonos-telemetry-shutdown"
STOPPER_THREAD = "slackonos-telemetry-stopper"
# How often a wait on the main thread (the exit hook, a host's own call) looks again.
_MAIN_THREAD_POLL_SECONDS = 0.002


class Participant(Protocol):
    def stop_for_exit(self, deadline: float, how: str) -> bool:
        """Finish within ``deadline`` (monotonic); ``how``: "signal", "explicit" or "exit".
        True when everything was delivered. Idempotent, thread-safe, never raises."""
        ...


class _Stop:
    """One participant's stop: started once, on a thread of its own."""

    def __init__(self, participant: Participant) -> None:
        self.participant = participant
        self.started = False
        self.finished = threading.Event()
        self.result = False

    def start(self, deadline: float, how: str) -> None:
        if self.started:
            return
        # Two callers may both get here (one interrupted by a signal); the participant's
        # stop is idempotent, so a second thread only waits for the first.
        self.started = True
        try:
            start_thread(self._run, THREAD_NAME, deadline, how)
        except RuntimeError:  # threads can no longer start this late in exit
            self._run(deadline, how)

    def _run(self, deadline: float, how: str) -> None:
        try:
            self.result = self.participant.stop_for_exit(deadline, how)
        except Exception:
            log.exception("telemetry shutdown failed; the bot is not affected")
            self.result = False
        finally:
            self.finished.set()


class _ProcessShutdown:
    """This process's participants, their stops, its signal handlers and its stopper."""

    def __init__(self) -> None:
        self.participants: list[Participant] = []
        self.stops: dict[int, _Stop] = {}
        self.deadline = 0.0
        self.installed = False
        self.handling = False  # our signal handler is running (on the main thread)
        self.wake_stopper: int | None = None  # the write end of the stopper's pipe
        self.stopper_done: int | None = None  # the read end of the pipe it answers on
        self.rounds_asked = 0  # by the signal handler
        self.rounds_done = 0  # by the stopper

    def start_stopper(self) -> None:
        read_end, write_end = os.pipe()
        done_read, done_write = os.pipe()
        for end in (write_end, done_read, done_write):
            os.set_blocking(end, False)
        start_thread(self._stopper, STOPPER_THREAD, read_end, done_write)
        self.wake_stopper = write_end
        self.stopper_done = done_read

    def _stopper(self, read_end: int, done_write: int) -> None:
        while True:
            try:
                if not os.read(read_end, 64):
                    return
            except OSError:
                return
            asked = self.rounds_asked
            run("signal")
            self.rounds_done = max(self.rounds_done, asked)
            # A full pipe already holds a wake-up for the handler.
            with contextlib.suppress(BlockingIOError):
                os.write(done_write, b"d")

    def claim(self, participant: Participant) -> _Stop:
        # setdefault is one atomic step under the GIL: a participant is claimed once.
        return self.stops.setdefault(id(participant), _Stop(participant))

    def deadline_for(self, timeout: float | None) -> float:
        """The deadline of the round under way, or of a new one that starts now. A round
        that ended early leaves its deadline in the future: it binds no later round."""
        now = time.monotonic()
        under_way = self.rounds_asked > self.rounds_done or any(
            stop.started and not stop.finished.is_set() for stop in self._stops()
        )
        if self.deadline <= now or not under_way:
            self.deadline = now + _timeout(timeout)
        return self.deadline

    def _stops(self) -> list[_Stop]:
        # A copy taken in one step (no lock: the signal handler asks too).
        return list(self.stops.values())


_state: PerProcess[_ProcessShutdown] = PerProcess(_ProcessShutdown)
# The handlers this process installed, by signal: (ours, the host's before it). Read by
# the at-fork hook, which must not wait on anything.
_chained_handlers: dict[int, tuple[Any, Any]] = {}


def participate(participant: Participant) -> None:
    state = _state.get()
    if all(existing is not participant for existing in state.participants):
        state.participants.append(participant)


def install() -> None:
    """Hook interpreter exit and, from the main thread, the signals. Once per process."""
    state = _state.get()
    if state.installed:
        return
    state.installed = True
    atexit.register(_at_exit, os.getpid())
    if threading.current_thread() is not threading.main_thread():
        log.debug("not on the main thread: shutdown hooked to interpreter exit only")
        return
    state.start_stopper()
    for signum in SHUTDOWN_SIGNALS:
        previous = signal.getsignal(signum)
        if previous in (signal.SIG_IGN, signal.default_int_handler):
            continue
        handler = _chained(signum, previous, os.getpid())
        signal.signal(signum, handler)
        _chained_handlers[signum] = (handler, previous)
        hold_signals_across_fork([signum])


def run(how: str = "explicit", timeout: float | None = None, only: Any = None) -> bool:
    """Stop every participant not yet stopped (or only ``only``), in parallel, within the
    process's one deadline (``timeout``, default TELEMETRY_SHUTDOWN_TIMEOUT, counted
    from the first call). A call while stops are under way waits for them. Never
    raises but KeyboardInterrupt (re-raised unless at exit, where it is absorbed); True
    when all delivered."""
    try:
        state = _state.get()
        targets = [only] if only is not None else list(state.participants)
        if not targets:
            return True
        deadline = state.deadline_for(timeout)
        stops = [state.claim(participant) for participant in targets]
        for stop in stops:
            stop.start(deadline, how)
        on_main_thread = threading.current_thread() is threading.main_thread()
        for stop in stops:
            while not stop.finished.is_set() and (left := deadline - time.monotonic()) > 0:
                try:
                    if on_main_thread:
                        # A signal handler may run inside this wait and call back in (a
                        # host's handler calling shutdown): an Event's lock could then be
                        # held by the very frame it interrupted. Poll, lock-free.
                        time.sleep(min(left, _MAIN_THREAD_POLL_SECONDS))
                    else:
                        stop.finished.wait(left)
                except KeyboardInterrupt:
                    if how != "exit":
                        raise
                    # A second Ctrl-C while the exit hook waits: it still ends by the deadline.
        return all(stop.finished.is_set() and stop.result for stop in stops)
    except Exception:
        log.exception("telemetry shutdown failed; the bot is not affected")
        return False


def _at_exit(owner: int) -> None:
    if os.getpid() != owner:
        return  # a forked child of the process that installed it: not ours to stop
    until = time.monotonic() + _timeout(None)  # no round started later ends later
    while True:
        try:
            run("exit")
            return
        except BaseException:
            # A signal handler raised while we wait (a second Ctrl-C's KeyboardInterrupt,
            # the host's own handler's SystemExit): the interpreter is exiting already and
            # would only print it as an error of ours. The round goes on, to its deadline.
            if time.monotonic() >= until:
                return


def _chained(signum: signal.Signals, previous: Any, owner: int) -> Any:
    def handle(received: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            _give_way(signum, previous)
            _pass_on(signum, previous, received, frame)
            return
        state = _state.get()
        if state.handling:
            return  # a signal inside our own handler: the outer call finishes the job
        state.handling = True
        try:
            _stop_from_handler(state)
        finally:
            state.handling = False
        _pass_on(signum, previous, received, frame)

    return handle


def _stop_from_handler(state: _ProcessShutdown) -> None:
    """The round, asked of the stopper thread and waited for: no lock, no thread start.

    A KeyboardInterrupt raised in here (Python's own SIGINT handler, run between two of
    our bytecodes) is absorbed like any signal inside our handler: the signal being
    handled decides how the process ends. Each step is done once, so the round keeps
    its one deadline however often it is interrupted."""
    if state.wake_stopper is None or state.stopper_done is None:
        return
    deadline: float | None = None
    asked: int | None = None
    woken = False
    while True:
        try:
            if deadline is None:
                deadline = state.deadline_for(None)
            if asked is None:
                state.rounds_asked += 1
                asked = state.rounds_asked
            if not woken:
                # A full pipe holds wake-ups already: the stopper is coming. (Woken
                # twice, it runs one more round, which finds everything claimed.)
                with contextlib.suppress(BlockingIOError):
                    os.write(state.wake_stopper, b"s")
                woken = True
            while state.rounds_done < asked and (left := deadline - time.monotonic()) > 0:
                select.select([state.stopper_done], [], [], left)
                with contextlib.suppress(BlockingIOError):
                    os.read(state.stopper_done, 64)
            return
        except KeyboardInterrupt:
            continue


def _pass_on(signum: signal.Signals, previous: Any, received: int, frame: FrameType | None) -> None:
    if callable(previous):
        # Called, not re-raised: a re-raised signal would wait, unhandled, for as
        # long as the main thread blocks (a lock, select, readline).
        previous(received, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def _give_way(signum: int, previous: Any) -> None:
    """Put the host's own handler back where ours still is."""
    ours = _chained_handlers.get(signum, (None, None))[0]
    try:
        if ours is not None and signal.getsignal(signum) is ours:
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    except (ValueError, OSError):  # not the main thread
        pass


def _give_way_in_child() -> None:
    # At-fork hook: no import, no lock, no file; only sigaction and sigprocmask calls.
    for signum, (_ours, previous) in list(_chained_handlers.items()):
        _give_way(signum, previous)
    # Now a SIGTERM that came since the fork reaches the host's action, not ours.
    release_held_signals()


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        return max(0.0, timeout)
    return shutdown_timeout_from(os.environ)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_give_way_in_child)
