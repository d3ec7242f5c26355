"""One instance, however many processes serve it (SPEC section 4, "one instance").

One config file is one instance. Gunicorn or uvicorn workers, ``--preload``
forks, recycled workers and several apps in one process all share it: the
instance sends one ``startup`` when it starts, heartbeats at the configured rate,
and one ``shutdown`` when it stops.

Membership: each process taking part holds a shared ``flock`` on
``telemetry-outbox.json.members`` for as long as it takes part. The kernel drops
it when the process ends, however it ends, so "is anyone else here?" is always
answered truly, with no lease to renew and no clock to trust.

State, in the outbox file's ``session`` table, changed only under the outbox
lock together with the events it causes (so each decision is made once):
``startedAt`` (wall time) and ``lastSlot`` (the last heartbeat slot made), the
parents that started members (``parents``), and ``handoverUntil``.

- The first process to join, with nobody else a member, starts the instance and
  makes ``startup``. Later joiners continue it.
- Heartbeat slot k falls k intervals after the start. Each member, at its own
  wake-up, makes the slot's heartbeat if nobody made it yet: one per slot. Each
  process keeps the schedule on its own monotonic clock, anchored once when it
  joins, so wall-clock jumps never move it.
- The last member to leave makes ``shutdown``. A process that leaves through a
  plain interpreter exit, whose parent has started members before (a pre-fork
  server recycling a worker), first waits a moment for a replacement to join:
  if one does, the instance goes on and no shutdown is made.
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

from slackonos_telemetry.config.locking import SharedHold, shared_hold_for
from slackonos_telemetry.telemetry.events import Event, EventName
from slackonos_telemetry.telemetry.outbox import Outbox

log = logging.getLogger(__name__)

MEMBERS_SUFFIX = ".members"
HANDOVER_SECONDS = 1.0
_HANDOVER_POLL_SECONDS = 0.02
_PARENTS_KEPT = 8

# Makes an event of this name, ``seconds`` into the instance's run; None when none is
# wanted (telemetry off) or it was printed instead of stored (debug).
Emit = Callable[[EventName, float], Event | None]


class ExitKind(enum.Enum):
    """How this process is stopping."""

    SIGNAL = "signal"  # SIGINT or SIGTERM reached our handler
    EXPLICIT = "explicit"  # the host (or `run`) called shutdown()
    EXIT = "exit"  # a plain interpreter exit: maybe a pre-fork server recycling a worker


@dataclass(frozen=True)
class Membership:
    started_wall: float
    anchor: float  # the instance's start on this process's monotonic clock
    started_here: bool


class InstanceSession:
    """This process's part in the instance of one config file."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._members: SharedHold = shared_hold_for(outbox.path, MEMBERS_SUFFIX)
        self.membership: Membership | None = None
        self._guard = threading.Lock()

    @property
    def joined(self) -> bool:
        return self.membership is not None

    def seconds_running(self, now: float | None = None) -> float:
        if self.membership is None:
            return 0.0
        return (time.monotonic() if now is None else now) - self.membership.anchor

    def join(self, bot_started_at: float, emit: Emit, timeout: float = 10.0) -> Membership:
        """Take part in the instance; start it (and make ``startup``) when nobody else is.

        ``bot_started_at``: when this bot started (monotonic); a new instance counts
        its run from then. Idempotent.
        """
        with self._guard:
            if self.membership is not None:
                return self.membership
            with self.outbox.transaction(timeout) as outbox:
                now_wall, now = time.time(), time.monotonic()
                others = self._members.others_hold()
                state = outbox.read_session()
                started = _time(state.get("startedAt"))
                continuing = started is not None and (others or _handover_open(state, now_wall))
                if started is not None and continuing:
                    started_wall = started
                else:
                    started_wall = now_wall - max(0.0, now - bot_started_at)
                    state = {"startedAt": started_wall, "lastSlot": 0}
                    event = emit(EventName.STARTUP, now - bot_started_at)
                    if event is not None:
                        outbox.add(event)
                state.pop("handoverUntil", None)
                state["parents"] = _count_parent(state.get("parents"))
                outbox.write_session(state)
                self._members.take()
            self.membership = Membership(
                started_wall, anchor=now - (now_wall - started_wall), started_here=not continuing
            )
            if continuing:
                log.debug("telemetry: joined the running instance of %s", self.outbox.path)
            return self.membership

    def heartbeat_if_due(self, interval: float, emit: Emit) -> float:
        """Make the current slot's heartbeat unless a member already did; returns when
        (monotonic) the next slot falls."""
        membership = self.membership
        if membership is None:
            return time.monotonic() + interval
        now = time.monotonic()
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
        if membership is None:
            return False
        handover = 0.0
        with self.outbox.transaction(_until(deadline)) as outbox:
            self._members.drop()
            if self._members.others_hold():
                return False
            state = outbox.read_session()
            if kind is ExitKind.EXIT and _respawn_plausible(state):
                handover = min(HANDOVER_SECONDS, _until(deadline) / 2)
            if handover <= 0:
                self._end(outbox, state, membership, emit)
                return True
            state["handoverUntil"] = time.time() + handover
            outbox.write_session(state)
        if self._replaced_within(handover):
            return False
        with self.outbox.transaction(_until(deadline)) as outbox:
            state = outbox.read_session()
            if self._members.others_hold() or "handoverUntil" not in state:
                return False
            self._end(outbox, state, membership, emit)
            return True

    def _end(self, outbox: Any, state: dict[str, Any], membership: Membership, emit: Emit) -> None:
        event = emit(EventName.SHUTDOWN, time.monotonic() - membership.anchor)
        if event is not None:
            outbox.add(event)
        outbox.write_session({"endedAt": time.time(), "parents": state.get("parents", {})})

    def _replaced_within(self, seconds: float) -> bool:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if self._members.others_hold():
                return True
            time.sleep(_HANDOVER_POLL_SECONDS)
        return False

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's membership is not ours."""
        self.membership = None
        self._guard = threading.Lock()


def _time(value: Any) -> float | None:
    """A wall-clock time stored in the state, or None when it is not one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _handover_open(state: dict[str, Any], now_wall: float) -> bool:
    until = _time(state.get("handoverUntil"))
    return until is not None and now_wall <= until


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
