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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.table import Document, Table

from .json_file import JSONFileError
from .locking import PathLock, lock_for
from .storages import AtomicJSONStorage

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

    def add(self, event: dict[str, Any]) -> int:
        """Store ``event``; returns how many old events were dropped to make room."""
        with self._session() as (events, meta):
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
            return len(dropped_ids)

    def pending(self) -> list[dict[str, Any]]:
        """The waiting events, oldest first."""
        events = self._snapshot().get(EVENTS_TABLE, {})
        return [dict(events[key]) for key in sorted(events, key=int)]

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
        return {name: table for name, table in data.items() if isinstance(table, dict)}

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
            if data is None or all(isinstance(table, dict) for table in data.values()):
                return
            problem = "its tables are not JSON objects"
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.error("telemetry outbox %s: %s; moved it to %s", self.path, problem, aside.name)
        os.replace(self.path, aside)


def _bump_meta(meta: Table, *, dropped: int = 0, last_delivery: str | None = None) -> None:
    current = meta.get(doc_id=META_DOC_ID)
    info: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    info["dropped"] = int(info.get("dropped", 0)) + dropped
    if last_delivery is not None:
        info["lastDelivery"] = last_delivery
    meta.upsert(Document(info, doc_id=META_DOC_ID))
