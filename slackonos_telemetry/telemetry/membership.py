"""This process's membership of an instance, taken the moment it arrives (``register()``).

Membership is a shared ``flock`` on ``telemetry-outbox.json.members``, held from
arrival until the process leaves the instance or ends (the kernel drops it then,
however the process ends). It is taken in ``register()``, on the host's main
thread and before the quiet-start, because a busy worker may never be quiet and
must still count: so this module is light.

Which instance a process belongs to is decided at arrival, under the outbox lock,
and written in the members file itself (a small JSON record; the file is never
replaced, since the holds are on it):
- nobody else holds the file: a new instance (a new token);
- somebody does: theirs;
- nobody does, but the last member to leave opened a handover that has not
  expired (a pre-fork server replacing its only worker): the instance goes on.
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
from pathlib import Path
from typing import Any

from slackonos_telemetry.config.locking import SharedHold, lock_for, shared_hold_for

log = logging.getLogger(__name__)

MEMBERS_SUFFIX = ".members"


@dataclass(frozen=True)
class Arrival:
    """This process's arrival in an instance."""

    instance: str
    hold: SharedHold


_arrivals: dict[str, Arrival] = {}
_arrivals_guard = threading.Lock()


def arrive(outbox_path: Path) -> Arrival:
    """Take this process's membership of the instance of ``outbox_path`` (once per process:
    later calls return the first arrival)."""
    key = os.path.realpath(outbox_path)
    with _arrivals_guard:
        found = _arrivals.get(key)
        if found is not None:
            return found
        with lock_for(outbox_path).hold():
            hold = shared_hold_for(outbox_path, MEMBERS_SUFFIX)
            others = hold.others_hold()
            record = _read(hold.lock_path)
            now = time.time()
            instance = record.get("instance")
            if not isinstance(instance, str) or not (others or _handover_open(record, now)):
                instance = uuid.uuid4().hex
            _write(hold.lock_path, {"instance": instance})
            hold.take()
        log.debug("pid %d arrived in instance %s (others: %s)", os.getpid(), instance, others)
        arrival = _arrivals[key] = Arrival(instance, hold)
        return arrival


def depart(outbox_path: Path) -> None:
    """Drop this process's membership (the caller holds the outbox lock)."""
    with _arrivals_guard:
        arrival = _arrivals.pop(os.path.realpath(outbox_path), None)
    if arrival is not None:
        arrival.hold.drop()


def others_present(outbox_path: Path) -> bool:
    return shared_hold_for(outbox_path, MEMBERS_SUFFIX).others_hold()


def open_handover(outbox_path: Path, instance: str, until: float) -> None:
    """The last member is leaving, maybe to be replaced: a process arriving before
    ``until`` (wall time) continues ``instance`` (the caller holds the outbox lock)."""
    _write(_members_path(outbox_path), {"instance": instance, "handoverUntil": until})


def close_handover(outbox_path: Path) -> None:
    """The instance ended: the next arrival starts a new one (caller holds the outbox lock)."""
    _write(_members_path(outbox_path), {})


def forget_arrivals_after_fork() -> None:
    """In a forked child: the parent's holds are not the child's (locking forgets them)."""
    global _arrivals_guard
    _arrivals.clear()
    _arrivals_guard = threading.Lock()


def _members_path(outbox_path: Path) -> Path:
    return shared_hold_for(outbox_path, MEMBERS_SUFFIX).lock_path


def _handover_open(record: dict[str, Any], now: float) -> bool:
    until = record.get("handoverUntil")
    return isinstance(until, (int, float)) and not isinstance(until, bool) and now <= until


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, record: dict[str, Any]) -> None:
    # In place, never replaced: the members' holds are on this very file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(record).encode())
    finally:
        os.close(fd)
