"""The durable outbox: events wait here, in a TinyDB file, until PostHog accepts them.

An event is written before it is handed to the SDK and removed only once
PostHog answered 2xx, so a crash, a kill or an outage loses nothing; it is sent
again on the next start with its original uuid and timestamp.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.table import Document, Table

from slackonos_telemetry.config.jsonfile import JSONFileError
from slackonos_telemetry.config.locking import PathLock, lock_for
from slackonos_telemetry.config.storages import AtomicJSONStorage
from slackonos_telemetry.telemetry.events import is_sendable

log = logging.getLogger(__name__)

CAPACITY = 1000
EVENTS_TABLE = "events"
META_TABLE = "meta"
META_DOC_ID = 1


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    dropped: int
    last_delivery: str | None


class Outbox:
    """Thread- and process-safe; every call re-reads the file under its lock."""

    def __init__(self, path: Path, capacity: int = CAPACITY) -> None:
        self.path = path
        self.capacity = capacity
        self._lock = lock_for(path)
        # Held while events are being sent, so two processes sharing this outbox
        # (a bot and `flush`, or two bots) never send the same event twice.
        self.sender_lock: PathLock = lock_for(path.with_name(path.name + ".send"))

    def add(self, event: dict[str, Any], still_wanted: Callable[[], bool] | None = None) -> bool:
        """Store ``event``, dropping the oldest when full; False when not stored.

        ``still_wanted`` is asked under the lock, just before the write: an opt-out
        or a reset-id saves the config first and then empties the outbox under this
        lock, so an event made just before one can never outlive it here.
        """
        with self._session() as (events, meta):
            if still_wanted is not None and not still_wanted():
                return False
            overflow = len(events) + 1 - self.capacity
            dropped_ids = sorted(document.doc_id for document in events.all())[: max(overflow, 0)]
            if dropped_ids:
                events.remove(doc_ids=dropped_ids)
                _bump_meta(meta, dropped=len(dropped_ids))
                log.warning(
                    "telemetry outbox full (%d events): dropped the %d oldest",
                    self.capacity,
                    len(dropped_ids),
                )
            events.insert(dict(event))
            return True

    def pending(self) -> list[dict[str, Any]]:
        """The waiting events, oldest first. An entry that cannot be sent (hand-edited,
        half-written by an old version) is dropped with one log line, so it never
        blocks the events behind it."""
        events = self._snapshot().get(EVENTS_TABLE, {})
        ordered = [events[key] for key in sorted(events, key=_doc_number)]
        sendable = [dict(event) for event in ordered if is_sendable(event)]
        if len(sendable) != len(ordered):
            self._drop_unsendable()
        return sendable

    def _drop_unsendable(self) -> None:
        with self._session() as (events, _meta):
            bad = [document.doc_id for document in events.all() if not is_sendable(document)]
            if bad:
                events.remove(doc_ids=bad)
                log.warning("telemetry outbox %s: dropped %d unusable entries", self.path, len(bad))

    def remove(self, event_uuid: str) -> None:
        with self._session() as (events, _meta):
            events.remove(Query().uuid == event_uuid)

    def record_delivery(self, when: str) -> None:
        with self._session() as (_events, meta):
            _bump_meta(meta, last_delivery=when)

    def clear(self) -> int:
        """Empty the outbox now; returns how many events were discarded."""
        if not self.path.exists():
            return 0
        with self._session() as (events, _meta):
            count = len(events)
            if count:
                events.truncate()
            return count

    def stats(self) -> OutboxStats:
        snapshot = self._snapshot()
        info = snapshot.get(META_TABLE, {}).get(str(META_DOC_ID), {})
        return OutboxStats(
            pending=len(snapshot.get(EVENTS_TABLE, {})),
            dropped=int(info.get("dropped", 0)),
            last_delivery=info.get("lastDelivery"),
        )

    def _snapshot(self) -> dict[str, dict[str, Any]]:
        # Lock-free: writes replace the file whole, so a read sees one version of it.
        # Works in a read-only folder too, where the lock file cannot be made.
        try:
            data = AtomicJSONStorage(self.path).read() or {}
        except JSONFileError:
            return {}
        if not _well_formed(data):
            return {}
        return data

    @contextlib.contextmanager
    def _session(self) -> Iterator[tuple[Table, Table]]:
        with self._lock.hold():
            self._set_aside_if_damaged()
            database = TinyDB(self.path, storage=AtomicJSONStorage)
            yield database.table(EVENTS_TABLE), database.table(META_TABLE)

    def _set_aside_if_damaged(self) -> None:
        # A damaged outbox must not stop telemetry for good: keep it for a person
        # to look at, and start a fresh one.
        try:
            data = AtomicJSONStorage(self.path).read()
        except JSONFileError as exc:
            problem = exc.detail
        else:
            if data is None or _well_formed(data):
                return
            problem = "its tables or entries are not JSON objects"
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.error("telemetry outbox %s: %s; moved it to %s", self.path, problem, aside.name)
        os.replace(self.path, aside)


def _well_formed(data: dict[str, Any]) -> bool:
    # TinyDB needs every table, and every entry in it, to be an object.
    tables = data.values()
    return all(
        isinstance(table, dict) and all(isinstance(entry, dict) for entry in table.values())
        for table in tables
    )


def _doc_number(key: str) -> int:
    return int(key) if key.isdigit() else 0


def _bump_meta(meta: Table, *, dropped: int = 0, last_delivery: str | None = None) -> None:
    current = meta.get(doc_id=META_DOC_ID)
    info: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    info["dropped"] = int(info.get("dropped", 0)) + dropped
    if last_delivery is not None:
        info["lastDelivery"] = last_delivery
    meta.upsert(Document(info, doc_id=META_DOC_ID))
