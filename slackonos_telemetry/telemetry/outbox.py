"""The durable outbox: events wait here, in a TinyDB file, until PostHog accepts them.

An event is written before it is handed to the SDK and removed only once PostHog
answered 2xx to the POST, so a crash, a kill or an outage loses nothing; it is
sent again on the next start with its original uuid and timestamp.

Every change is one transaction under the outbox lock: the file is parsed once
(and only if it changed since the last parse), changed in memory through TinyDB,
and replaced once, atomically. The same file keeps the outbox's counters and the
instance session (``session.py``).

Three locks, always taken in this order (ARCHITECTURE.md):
``.send``: held by the one process sending, for a whole pass;
``.lock``: held for each transaction;
``.wire``: taken under ``.lock`` when a batch has passed its last check, and
held until its request is over. An opt-out empties the outbox under ``.lock``
and then looks at ``.wire``: no request can start after that, and one already
started is reported as such.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.table import Document, Table

from slackonos_telemetry.config.jsonfile import JSONFileError
from slackonos_telemetry.config.locking import DEFAULT_TIMEOUT_SECONDS, PathLock, lock_for
from slackonos_telemetry.config.storages import BufferedJSONStorage, load_tables
from slackonos_telemetry.telemetry.events import Event

log = logging.getLogger(__name__)

CAPACITY = 1000
EVENTS_TABLE = "events"
META_TABLE = "meta"
SESSION_TABLE = "session"
ONLY_DOC_ID = 1
# How long an opt-out waits for a request already on the wire before it answers.
WIRE_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    dropped: int
    last_delivery: str | None


class Wire(enum.Enum):
    """What an opt-out found on the wire when it emptied the outbox."""

    IDLE = "idle"
    FINISHED = "finished"  # a request was under way and ended while the opt-out waited
    BUSY = "busy"  # a request is still under way: it may still reach PostHog


@dataclass(frozen=True)
class Cleared:
    discarded: int
    wire: Wire


@dataclass
class Selection:
    """What a sender picked from the waiting events, under the outbox lock."""

    send: list[Event] = field(default_factory=list)
    unusable: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (entry, why)
    blocked: enum.Enum | None = None  # why nothing may be sent now, in the sender's terms


class OutboxTransaction:
    """The outbox file inside one transaction, through TinyDB's tables."""

    def __init__(self, database: TinyDB, capacity: int) -> None:
        self.events: Table = database.table(EVENTS_TABLE)
        self.meta: Table = database.table(META_TABLE)
        self.session: Table = database.table(SESSION_TABLE)
        self._capacity = capacity

    def waiting(self) -> list[Document]:
        """The stored entries, oldest first."""
        return sorted(self.events.all(), key=lambda document: document.doc_id)

    def add(self, event: Event) -> None:
        overflow = len(self.events) + 1 - self._capacity
        if overflow > 0:
            oldest = [document.doc_id for document in self.waiting()[:overflow]]
            self.events.remove(doc_ids=oldest)
            self.change_meta(dropped=len(oldest))
            log.warning(
                "telemetry outbox full (%d events): dropped the %d oldest",
                self._capacity,
                len(oldest),
            )
        self.events.insert(dict(event))

    def remove_uuids(self, uuids: set[str]) -> int:
        found = [
            document.doc_id
            for document in self.events.all()
            if isinstance(document.get("uuid"), str) and document["uuid"] in uuids
        ]
        if found:
            self.events.remove(doc_ids=found)
        return len(found)

    def read_meta(self) -> dict[str, Any]:
        document = self.meta.get(doc_id=ONLY_DOC_ID)
        return dict(document) if isinstance(document, dict) else {}

    def change_meta(self, *, dropped: int = 0, **values: Any) -> None:
        info = self.read_meta()
        info["dropped"] = int(info.get("dropped", 0)) + dropped
        info.update(values)
        self.meta.upsert(Document(info, doc_id=ONLY_DOC_ID))

    def read_session(self) -> dict[str, Any]:
        document = self.session.get(doc_id=ONLY_DOC_ID)
        return dict(document) if isinstance(document, dict) else {}

    def write_session(self, state: dict[str, Any]) -> None:
        self.session.truncate()
        self.session.insert(Document(state, doc_id=ONLY_DOC_ID))


class Outbox:
    """The outbox of one config file; thread- and process-safe."""

    def __init__(self, path: Path, capacity: int = CAPACITY) -> None:
        self.path = path
        self.capacity = capacity
        self._lock = lock_for(path)
        self.sender_lock: PathLock = lock_for(path, ".send")
        self.wire_lock: PathLock = lock_for(path, ".wire")

    # -- transactions ------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Iterator[OutboxTransaction]:
        """Under the outbox lock: the file as it is now, written once at the end if changed
        (not when the block raises)."""
        with self._lock.hold(timeout), self._opened() as (database, storage):
            yield OutboxTransaction(database, self.capacity)
            storage.commit()

    @contextlib.contextmanager
    def _opened(self) -> Iterator[tuple[TinyDB, BufferedJSONStorage]]:
        try:
            loaded = load_tables(self.path) or {}
        except JSONFileError as exc:
            self._set_aside(exc.detail)
            loaded = {}
        database = TinyDB(self.path, storage=BufferedJSONStorage, loaded=loaded)
        storage = database.storage
        assert isinstance(storage, BufferedJSONStorage)
        yield database, storage

    def _set_aside(self, problem: str) -> None:
        # A damaged outbox must not stop telemetry for good: keep it for a person
        # to look at, and start a fresh one.
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.error("telemetry outbox %s: %s; moved it to %s", self.path, problem, aside.name)
        os.replace(self.path, aside)

    # -- the events ----------------------------------------------------------------

    def add(self, event: Event, still_wanted: Callable[[], bool] | None = None) -> bool:
        """Store ``event``, dropping the oldest when full; False when not stored.

        ``still_wanted`` is asked under the lock, just before the write: an opt-out
        or a reset-id saves the config first and then empties the outbox under this
        lock, so an event made just before one can never outlive it here.
        """
        with self.transaction() as outbox:
            if still_wanted is not None and not still_wanted():
                return False
            outbox.add(event)
            return True

    def pending(self) -> list[dict[str, Any]]:
        """The stored entries, oldest first, as they are (checked only when sent).
        Lock-free: a write replaces the file whole, so a read sees one version."""
        events = self._tables().get(EVENTS_TABLE, {})
        return [dict(events[key]) for key in sorted(events, key=_doc_number)]

    def stats(self) -> OutboxStats:
        tables = self._tables()
        info = tables.get(META_TABLE, {}).get(str(ONLY_DOC_ID), {})
        return OutboxStats(
            pending=len(tables.get(EVENTS_TABLE, {})),
            dropped=_count(info.get("dropped")),
            last_delivery=_text(info.get("lastDelivery")),
        )

    def last_run(self) -> dict[str, Any]:
        """What the bot last ran with (``app_version``, ``release``), as the tracker recorded."""
        info = self._tables().get(META_TABLE, {}).get(str(ONLY_DOC_ID), {})
        found = info.get("lastRun")
        return dict(found) if isinstance(found, dict) else {}

    def remove(self, uuids: set[str], delivered_at: str | None = None) -> int:
        """Remove these events; ``delivered_at``: PostHog took them then (for ``status``)."""
        with self.transaction() as outbox:
            if delivered_at is not None:
                outbox.change_meta(lastDelivery=delivered_at)
            return outbox.remove_uuids(uuids)

    def record(self, **values: Any) -> None:
        with self.transaction() as outbox:
            outbox.change_meta(**values)

    def trim(self) -> int:
        """Bring an over-full file (an older version's, a hand edit) down to the cap once."""
        with self.transaction() as outbox:
            overflow = len(outbox.events) - self.capacity
            if overflow <= 0:
                return 0
            oldest = [document.doc_id for document in outbox.waiting()[:overflow]]
            outbox.events.remove(doc_ids=oldest)
            outbox.change_meta(dropped=overflow)
        log.warning(
            "telemetry outbox held more than %d events: dropped the %d oldest",
            self.capacity,
            overflow,
        )
        return overflow

    def clear(self, wire_wait: float = WIRE_WAIT_SECONDS) -> Cleared:
        """Empty the outbox now. Still under its lock (so no request can start), look at
        the wire: a request that started before may still be under way."""
        if not self.path.exists():
            return Cleared(0, Wire.IDLE)
        with self.transaction() as outbox:
            count = len(outbox.events)
            if count:
                outbox.events.truncate()
            if not self.wire_lock.busy():
                wire = Wire.IDLE
            else:
                wire = Wire.BUSY if self.wire_lock.busy(wire_wait) else Wire.FINISHED
        return Cleared(count, wire)

    @contextlib.contextmanager
    def sending(self, select: Callable[[list[dict[str, Any]]], Selection]) -> Iterator[Selection]:
        """The last check before a request: under the outbox lock, ``select`` picks what
        to send from what waits now (and names unusable entries, removed at once); if
        it picked anything, the wire lock is taken before the outbox lock is let go and
        held until the block ends (the request)."""
        with contextlib.ExitStack() as wire:
            with self.transaction() as outbox:
                stored = outbox.waiting()
                entries = [dict(document) for document in stored]
                doc_ids = {
                    id(entry): document.doc_id
                    for entry, document in zip(entries, stored, strict=True)
                }
                selection = select(entries)
                if selection.unusable:
                    outbox.events.remove(
                        doc_ids=[doc_ids[id(entry)] for entry, _ in selection.unusable]
                    )
                if selection.send:
                    wire.enter_context(self.wire_lock.hold())
            yield selection

    def _tables(self) -> dict[str, Any]:
        try:
            return load_tables(self.path) or {}
        except JSONFileError:
            return {}


def _doc_number(key: str) -> int:
    return int(key) if key.isdigit() else 0


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
