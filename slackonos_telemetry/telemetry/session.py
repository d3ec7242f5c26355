"""One instance, however many processes serve it (SPEC section 4, "one instance").

One config file is one instance. Gunicorn or uvicorn workers, ``--preload``
forks, recycled workers and several apps in one process all share it: the
instance sends one ``startup`` when it starts, heartbeats at the configured rate,
and one ``shutdown`` when it stops.

Membership (``membership.py``): each process taking part holds a shared ``flock``
from the moment it arrives (``register()``) until it leaves, and learns at arrival
which instance it belongs to (a token). The kernel drops the hold when the process
ends, however it ends, so "is anyone else here?" is always answered truly, with
no lease to renew and no clock to trust.

State, in the outbox file's ``session`` table, changed only under the outbox
lock together with the events it causes (so each decision is made once): the
running ``instance`` token, ``startedAt`` (wall time), ``lastSlot`` (the last
heartbeat slot made), and the parents that started members (``parents``).

- The first join carrying a new token starts that instance and makes ``startup``;
  every later join of the same token continues it.
- Heartbeat slot k falls k intervals after the start. Each member, at its own
  wake-up, makes the slot's heartbeat if nobody made it yet: one per slot. Each
  process keeps the schedule on its own monotonic clock, anchored once when it
  joins, so wall-clock jumps never move it.
- The last member to leave makes ``shutdown``. A process that leaves through a
  plain interpreter exit, whose parent has started members before (a pre-fork
  server recycling a worker), first opens a handover and waits a moment: if a
  replacement arrives, the instance goes on and no shutdown is made.
"""

from __future__ import annotations

import enum
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
from slackonos_telemetry.telemetry.outbox import Outbox

log = logging.getLogger(__name__)

HANDOVER_SECONDS = 1.0
_HANDOVER_POLL_SECONDS = 0.02
_PARENTS_KEPT = 8

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
    started_wall: float
    anchor: float  # the instance's start on this process's monotonic clock


class InstanceSession:
    """This process's part in the instance of one config file."""

    def __init__(self, outbox: Outbox, clock: Callable[[], float] = time.monotonic) -> None:
        self.outbox = outbox
        self._clock = clock  # this process's monotonic clock (a test may hold it)
        self.membership: Membership | None = None
        self.left = False  # once left, never joined again: this process is stopping
        self._guard = threading.Lock()

    @property
    def joined(self) -> bool:
        return self.membership is not None

    def seconds_running(self, now: float | None = None) -> float:
        if self.membership is None:
            return 0.0
        return (self._clock() if now is None else now) - self.membership.anchor

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
            arrival = arrive(self.outbox.path)
            with self.outbox.transaction(timeout) as outbox:
                now_wall, now = time.time(), self._clock()
                state = outbox.read_session()
                started = _time(state.get("startedAt"))
                continuing = started is not None and state.get("instance") == arrival.instance
                if started is not None and continuing:
                    started_wall = started
                else:
                    started_wall = now_wall - max(0.0, now - bot_started_at)
                    state = {
                        "instance": arrival.instance,
                        "startedAt": started_wall,
                        "lastSlot": 0,
                        "parents": state.get("parents", {}),
                    }
                    event = emit(EventName.STARTUP, now - bot_started_at)
                    if event is not None:
                        outbox.add(event)
                state["parents"] = _count_parent(state.get("parents"))
                outbox.write_session(state)
            self.membership = Membership(started_wall, anchor=now - (now_wall - started_wall))
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
            state = outbox.read_session()
            last = state.get("lastSlot")
            if isinstance(last, int) and not isinstance(last, bool) and last >= slot:
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
        handover = 0.0
        with self.outbox.transaction(_until(deadline)) as outbox:
            depart(self.outbox.path)
            if others_present(self.outbox.path):
                log.debug("pid %d left (%s); others go on", os.getpid(), kind.value)
                return False
            state = outbox.read_session()
            if kind is ExitKind.EXIT and _respawn_plausible(state):
                handover = min(HANDOVER_SECONDS, _until(deadline) / 2)
            if handover <= 0:
                self._end(outbox, state, membership, emit)
                return True
            open_handover(self.outbox.path, str(state.get("instance")), time.time() + handover)
            log.debug(
                "pid %d left last (%s): handover for %.2f s", os.getpid(), kind.value, handover
            )
        if self._replaced_within(handover):
            return False
        with self.outbox.transaction(_until(deadline)) as outbox:
            if others_present(self.outbox.path):
                return False
            self._end(outbox, outbox.read_session(), membership, emit)
            return True

    def _end(self, outbox: Any, state: dict[str, Any], membership: Membership, emit: Emit) -> None:
        event = emit(EventName.SHUTDOWN, self._clock() - membership.anchor)
        if event is not None:
            outbox.add(event)
        close_handover(self.outbox.path)
        ended = {"endedAt": time.time(), "parents": state.get("parents", {})}
        if "lastSlot" in state:
            ended["lastSlot"] = state["lastSlot"]
        outbox.write_session(ended)

    def _replaced_within(self, seconds: float) -> bool:
        # Real time: this waits, with real sleeps, for another process.
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if others_present(self.outbox.path):
                return True
            time.sleep(_HANDOVER_POLL_SECONDS)
        return False


def _time(value: Any) -> float | None:
    """A wall-clock time stored in the state, or None when it is not one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _count_parent(parents: Any) -> dict[str, int]:
    counts = {
        str(key): value
        for key, value in (parents.items() if isinstance(parents, dict) else [])
        if isinstance(value, int)
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
    return isinstance(count, int) and count >= 2


def _until(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
