"""This process's membership of an instance, taken the moment it arrives.

Membership is a shared lock on ``<config>.members.lock`` in the state folder, held from
arrival until the process leaves the instance or ends (the kernel drops it then,
however the process ends). It is a POSIX record lock: a forked child never holds its
parent's, so a host's fork children are never members unless they register, and can
never release the parent's membership. It is taken on the plugin's start thread
before anything heavy is loaded (a busy worker may never be quiet, and must still
count), so this module is light: no TinyDB.

Which instance a process belongs to is decided at arrival, under the outbox lock, and
kept in ``<config>.members`` (a small JSON record, replaced atomically):
- nobody else holds the lock: a new instance (a new token);
- somebody does: theirs;
- nobody does, but the last member to leave opened a handover that has not expired
  (a pre-fork server replacing its only worker): the instance goes on.
The session (``session.py``) starts an instance, with its ``startup`` event, at the
first join that carries its token.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from slackonos_telemetry.config.files import make_state_folder, read_text, replace_file
from slackonos_telemetry.config.jsonfile import JSONFileError
from slackonos_telemetry.config.locking import SharedHold, lock_for, shared_hold_for
from slackonos_telemetry.config.paths import StatePlace
from slackonos_telemetry.forksafe import PerProcess

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arrival:
    """This process's arrival in an instance."""

    instance: str
    hold: SharedHold


class _Arrivals:
    def __init__(self) -> None:
        self.by_place: dict[str, Arrival] = {}
        self.guard = threading.Lock()


_arrivals: PerProcess[_Arrivals] = PerProcess(_Arrivals)


def arrive(place: StatePlace) -> Arrival:
    """Take this process's membership of the instance kept in ``place`` (once per
    process: later calls return the first arrival). Raises OSError."""
    arrivals = _arrivals.get()
    key = str(place.folder / place.config_name)
    with arrivals.guard:
        found = arrivals.by_place.get(key)
        if found is not None:
            return found
        make_state_folder(place.folder)
        with lock_for(place.outbox_lock).hold():
            hold = shared_hold_for(place.members_lock)
            others = hold.others_hold()
            record = _read(place)
            instance = record.get("instance")
            if not isinstance(instance, str) or not (others or _handover_open(record)):
                instance = uuid.uuid4().hex
            _write(place, {"instance": instance})
            hold.take()
        log.debug("pid %d arrived in instance %s (others: %s)", os.getpid(), instance, others)
        arrival = arrivals.by_place[key] = Arrival(instance, hold)
        return arrival


def depart(place: StatePlace) -> None:
    """Drop this process's membership (the caller holds the outbox lock)."""
    arrivals = _arrivals.get()
    with arrivals.guard:
        arrival = arrivals.by_place.pop(str(place.folder / place.config_name), None)
    if arrival is not None:
        arrival.hold.drop()


def others_present(place: StatePlace) -> bool:
    """Whether another process is a member (the caller holds the outbox lock)."""
    return shared_hold_for(place.members_lock).others_hold()


def open_handover(place: StatePlace, instance: str, until: float) -> None:
    """The last member is leaving, maybe to be replaced: a process arriving before
    ``until`` (wall time) continues ``instance`` (the caller holds the outbox lock)."""
    _write(place, {"instance": instance, "handoverUntil": until})


def close_handover(place: StatePlace) -> None:
    """The instance ended: the next arrival starts a new one (caller holds the outbox lock)."""
    _write(place, {})


def _handover_open(record: dict[str, Any]) -> bool:
    until = record.get("handoverUntil")
    return isinstance(until, (int, float)) and not isinstance(until, bool) and time.time() <= until


def _read(place: StatePlace) -> dict[str, Any]:
    path = place.members
    try:
        data = json.loads(read_text(path, own=True) or "{}")
    except (JSONFileError, ValueError) as exc:
        log.warning("telemetry: %s is unreadable (%s); a new instance may start", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _write(place: StatePlace, record: dict[str, Any]) -> None:
    replace_file(place.members, json.dumps(record) + "\n", own=True)
