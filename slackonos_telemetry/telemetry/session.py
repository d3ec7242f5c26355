"""One instance, however many processes serve it (docs/CONTRACT.md, "One instance").

One config file is one instance. Gunicorn or uvicorn workers, ``--preload`` masters,
recycled workers and several apps in one process all share it: the instance sends one
``startup`` when it starts, heartbeats at the configured rate, and one ``shutdown``
when it stops.

Membership (``membership.py``): each process taking part holds a shared lock from
the moment it arrives until it leaves, and learns at arrival which instance it belongs
to (a token). The kernel drops the lock when the process ends, however it ends, so
"is anyone else here?" is always answered truly, with no lease to renew.

State, in the outbox file's ``session`` table, changed only under the outbox lock
together with the events it causes (so each decision is made once): the running
``instance`` token, when it started (``startedAt`` on the wall clock; ``monoStart`` on
the machine's monotonic clock, with the ``boot`` it belongs to), ``lastSlot`` (the
last heartbeat slot made), and the parents that started members (``parents``).

- The first join carrying a new token starts that instance and makes ``startup``;
  every later join of the same token continues it.
- Uptime and heartbeat slot k (k intervals after the start) follow the monotonic
  clock, which every process of one boot shares, so a step of the wall clock moves
  neither; after a reboot (another boot) the wall clock is all there is. Each member,
  at its own wake-up, makes the slot's heartbeat if nobody made it yet.
- The last member to leave makes ``shutdown``. A process that leaves through a plain
  interpreter exit, whose parent has started members before (a pre-fork server
  recycling a worker), first opens a handover and waits, for most of the shutdown
  deadline: if a replacement arrives, the instance goes on and no shutdown is made.
"""

from __future__ import annotations

import enum
import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slackonos_telemetry.telemetry.events import Event, EventName
from slackonos_telemetry.telemetry.membership import (
    arrive,
    close_handover,
    depart,
    open_handover,
    others_present,
)
from slackonos_telemetry.telemetry.outbox import Outbox, OutboxTransaction

log = logging.getLogger(__name__)

# What a handover leaves of the shutdown deadline, to send the shutdown event if no
# replacement came.
SHUTDOWN_SEND_SECONDS = 0.5
_HANDOVER_POLL_SECONDS = 0.02
_PARENTS_KEPT = 8
_BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"

# Makes an event of this name, ``seconds`` into the instance's run; None when none is
# wanted (telemetry off) or it was printed instead of stored (debug).
Emit = Callable[[EventName, float], Event | None]


class SessionLeft(RuntimeError):
    """A join after this process left the instance (it is stopping)."""


class ExitKind(enum.Enum):
    """How this process is stopping."""

    SIGNAL = "signal"  # SIGINT or SIGTERM reached our handler
    EXPLICIT = "explicit"  # the host (or `run`) called shutdown()
    EXIT = "exit"  # a plain interpreter exit: maybe a pre-fork server recycling a worker


@dataclass(frozen=True)
class Membership:
    anchor: float  # the instance's start on this process's monotonic clock


class InstanceSession:
    """This process's part in the instance of one config file."""

    def __init__(self, outbox: Outbox, clock: Callable[[], float] = time.monotonic) -> None:
        self.outbox = outbox
        self._clock = clock  # the monotonic clock (a test may hold it)
        self.membership: Membership | None = None
        self.left = False  # once left, never joined again: this process is stopping
        self._guard = threading.Lock()

    @property
    def joined(self) -> bool:
        return self.membership is not None

    def seconds_running(self, now: float | None = None) -> float:
        if self.membership is None:
            return 0.0
        return max(0.0, (self._clock() if now is None else now) - self.membership.anchor)

    def join(self, bot_started_at: float, emit: Emit, timeout: float = 10.0) -> Membership:
        """Take part in the instance; start it (and make ``startup``) when nobody else is.

        ``bot_started_at``: when this bot started (monotonic); a new instance counts
        its run from then. Idempotent.
        """
        with self._guard:
            if self.membership is not None:
                return self.membership
            if self.left:
                raise SessionLeft("this process has left the instance")
            arrival = arrive(self.outbox.place)
            with self.outbox.transaction(timeout) as outbox:
                now_wall, now = time.time(), self._clock()
                state = _checked(outbox.read_session())
                continuing = "startedAt" in state and state.get("instance") == arrival.instance
                if not continuing:
                    state = {
                        "instance": arrival.instance,
                        "startedAt": now_wall - max(0.0, now - bot_started_at),
                        "monoStart": bot_started_at,
                        "boot": boot_id(),
                        "lastSlot": 0,
                        "parents": state.get("parents", {}),
                    }
                    event = emit(EventName.STARTUP, now - bot_started_at)
                    if event is not None:
                        outbox.add(event)
                state["parents"] = _count_parent(state.get("parents"))
                outbox.write_session(state)
            self.membership = Membership(anchor=_anchor(state, now_wall, now))
            log.debug(
                "pid %d joined instance %s (%s)",
                os.getpid(),
                arrival.instance,
                "continued" if continuing else "started",
            )
            return self.membership

    def heartbeat_if_due(self, interval: float, emit: Emit) -> float:
        """Make the current slot's heartbeat unless a member already did; returns when
        (monotonic) the next slot falls."""
        membership = self.membership
        if membership is None:
            return self._clock() + interval
        now = self._clock()
        slot = math.floor((now - membership.anchor) / interval)
        next_slot_at = membership.anchor + (slot + 1) * interval
        if slot < 1:
            return next_slot_at
        with self.outbox.transaction() as outbox:
            state = _checked(outbox.read_session())
            if state.get("lastSlot", 0) >= slot:
                return next_slot_at
            # Slots missed while asleep are skipped, not sent in a burst.
            event = emit(EventName.HEARTBEAT, now - membership.anchor)
            if event is not None:
                outbox.add(event)
            state["lastSlot"] = slot
            outbox.write_session(state)
        return next_slot_at

    def leave(self, kind: ExitKind, deadline: float, emit: Emit) -> bool:
        """Stop taking part; True when this process was the last and ended the instance
        (its ``shutdown`` made, if wanted). Bounded by ``deadline`` (monotonic)."""
        with self._guard:
            membership, self.membership = self.membership, None
            self.left = True
        if membership is None:
            return False
        place = self.outbox.place
        handover = 0.0
        with self.outbox.transaction(_until(deadline)) as outbox:
            depart(place)
            if others_present(place):
                log.debug("pid %d left (%s); others go on", os.getpid(), kind.value)
                return False
            state = _checked(outbox.read_session())
            if kind is ExitKind.EXIT and _respawn_plausible(state):
                # A pre-fork server starts this process's own replacement only once it
                # has exited; the one worth waiting for is another's, already booting.
                # Most of the deadline is its to arrive in; the rest sends the shutdown.
                handover = max(0.0, _until(deadline) - SHUTDOWN_SEND_SECONDS)
            if handover <= 0:
                self._end(outbox, state, membership, emit)
                return True
            open_handover(place, str(state.get("instance")), time.time() + handover)
            log.debug(
                "pid %d left last (%s): handover for %.2f s", os.getpid(), kind.value, handover
            )
        if self._replaced_within(handover):
            return False
        with self.outbox.transaction(_until(deadline)) as outbox:
            if others_present(place):
                return False
            self._end(outbox, _checked(outbox.read_session()), membership, emit)
            return True

    def _end(
        self,
        outbox: OutboxTransaction,
        state: dict[str, Any],
        membership: Membership,
        emit: Emit,
    ) -> None:
        event = emit(EventName.SHUTDOWN, self._clock() - membership.anchor)
        if event is not None:
            outbox.add(event)
        close_handover(self.outbox.place)
        ended: dict[str, Any] = {"endedAt": time.time(), "parents": state.get("parents", {})}
        if "lastSlot" in state:
            ended["lastSlot"] = state["lastSlot"]
        outbox.write_session(ended)

    def _replaced_within(self, seconds: float) -> bool:
        # Real time: this waits, with real sleeps, for another process.
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if others_present(self.outbox.place):
                return True
            time.sleep(_HANDOVER_POLL_SECONDS)
        return False


def instance_uptime(outbox: Outbox) -> float | None:
    """How long the running instance has run, from its stored session (for a process
    that answers commands without tracking); None when none runs."""
    state = _checked(outbox.session())
    if "startedAt" not in state or "endedAt" in state:
        return None
    now = time.monotonic()
    return max(0.0, now - _anchor(state, time.time(), now))


@functools.lru_cache(maxsize=1)
def boot_id() -> str | None:
    """Which boot of the machine this is: monotonic times of one boot compare."""
    try:
        with open(_BOOT_ID_FILE, "rb") as handle:
            return handle.read().decode("utf-8", "replace").strip() or None
    except OSError:
        return None


def _anchor(state: dict[str, Any], now_wall: float, now: float) -> float:
    """The instance's start on this process's monotonic clock."""
    mono_start = state.get("monoStart")
    if state.get("boot") is not None and state.get("boot") == boot_id() and mono_start is not None:
        return float(mono_start)
    return now - max(0.0, now_wall - float(state["startedAt"]))


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


# Each field of the session with its check; a bad one is dropped (and logged once).
_SESSION_FIELDS: dict[str, Callable[[Any], bool]] = {
    "instance": lambda value: isinstance(value, str),
    "startedAt": _is_time,
    "monoStart": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    "boot": lambda value: isinstance(value, str),
    "lastSlot": lambda value: type(value) is int and value >= 0,
    "parents": lambda value: isinstance(value, dict),
    "endedAt": _is_time,
}
_told_bad: set[str] = set()


def _checked(state: dict[str, Any]) -> dict[str, Any]:
    bad = [name for name, ok in _SESSION_FIELDS.items() if name in state and not ok(state[name])]
    for name in bad:
        del state[name]
        if name not in _told_bad:
            _told_bad.add(name)
            log.warning("telemetry outbox: ignored the session's %s, of the wrong type", name)
    return state


def _count_parent(parents: Any) -> dict[str, int]:
    counts = {
        str(key): value
        for key, value in (parents.items() if isinstance(parents, dict) else [])
        if type(value) is int
    }
    parent = str(os.getppid())
    counts[parent] = counts.pop(parent, 0) + 1
    return dict(list(counts.items())[-_PARENTS_KEPT:])


def _respawn_plausible(state: dict[str, Any]) -> bool:
    """Whether our parent is a server that starts members: it has started two or more."""
    parent = os.getppid()
    parents = state.get("parents")
    if parent <= 1 or not isinstance(parents, dict):
        return False
    count = parents.get(str(parent), 0)
    return type(count) is int and count >= 2


def _until(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
