"""The durable outbox: events wait here, in a TinyDB file in the state folder, until
PostHog accepts them.

An event is written before it is handed to the SDK and removed only once PostHog
answered 2xx to the POST, so a crash, a kill or an outage loses nothing; it is sent
again on the next start with its original uuid and timestamp.

Every change is one transaction under the outbox lock: the file is parsed once (and
only if it changed since the last parse), changed in memory through TinyDB, and
replaced once, atomically. The same file keeps the outbox's counters, what the
plugin keeps in its state folder (``meta``) and the instance session (``session``).
Every field read from it is checked: a field of the wrong type is reset and logged
once, never a reason to stop sending or to send again.

Three locks, always taken in this order (ARCHITECTURE.md):
``send.lock``: held by the one process sending, for a whole pass;
``outbox.lock``: held for each transaction;
``wire.lock``: taken under ``outbox.lock`` when a batch has passed its last check,
and held until its request is over. An opt-out empties the outbox under
``outbox.lock`` and then looks at ``wire.lock``: no request can start after that, and
one already started is reported as such.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.table import Document, Table

from slackonos_telemetry.config.files import FileProblem, make_state_folder
from slackonos_telemetry.config.jsonfile import JSONFileError
from slackonos_telemetry.config.locking import DEFAULT_TIMEOUT_SECONDS, FileLock, lock_for
from slackonos_telemetry.config.paths import StatePlace
from slackonos_telemetry.config.storages import BufferedJSONStorage, load_tables
from slackonos_telemetry.telemetry.events import Event
from slackonos_telemetry.telemetry.log_once import OnceLog

log = logging.getLogger(__name__)

CAPACITY = 1000
EVENTS_TABLE = "events"
META_TABLE = "meta"
SESSION_TABLE = "session"
ONLY_DOC_ID = 1
# How long an opt-out waits for a request already on the wire before it answers.
WIRE_WAIT_SECONDS = 1.0
# How many Slack event IDs are remembered, so that a retry landing on another worker
# is not handled twice.
SLACK_EVENTS_KEPT = 200


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _ran_with(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(value.get(k), str) for k in value)


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# What ``meta`` may hold, each field with its check. Anything else is left alone.
META_FIELDS: dict[str, Callable[[Any], bool]] = {
    "dropped": _count,
    "lastDelivery": _text,
    "lastRun": _ran_with,  # what the bot last ran with: app_version, release
    "instanceId": _text,  # kept here when the config file cannot be written
    "noticeShown": lambda value: isinstance(value, bool),  # likewise
    "noticePostedAt": _time,  # when the first-run notice went up (wall clock)
    "noticeLogged": lambda value: isinstance(value, bool),  # it went to the log
    "slackEvents": _texts,
    "oldOutbox": _text,  # which older version's outbox was taken over (its file's identity)
}


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    dropped: int
    last_delivery: str | None
    problem: str | None = None  # why the outbox cannot be read, if it cannot


class Wire(enum.Enum):
    """What an opt-out found on the wire when it emptied the outbox."""

    IDLE = "idle"
    FINISHED = "finished"  # a request was under way and ended while the opt-out waited
    BUSY = "busy"  # a request is still under way: it may still reach PostHog


@dataclass(frozen=True)
class Cleared:
    discarded: int
    wire: Wire
    problem: str | None = None  # the outbox could not be emptied (a planted file, say)


@dataclass
class Selection:
    """What a sender picked from the waiting events, under the outbox lock."""

    send: list[Event] = field(default_factory=list)
    unusable: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (entry, why)
    blocked: Any = None  # why nothing may be sent now, in the sender's terms


class OutboxTransaction:
    """The outbox file inside one transaction, through TinyDB's tables."""

    def __init__(self, database: TinyDB, capacity: int, once: OnceLog) -> None:
        self.events: Table = database.table(EVENTS_TABLE)
        self.meta_table: Table = database.table(META_TABLE)
        self.session: Table = database.table(SESSION_TABLE)
        self._capacity = capacity
        self._once = once

    def waiting(self) -> list[Document]:
        """The stored entries, oldest first."""
        return sorted(self.events.all(), key=lambda document: document.doc_id)

    def add(self, event: Event) -> None:
        self.add_all([dict(event)])

    def add_all(self, entries: list[dict[str, Any]]) -> None:
        """Store these entries after the waiting ones, dropping the oldest once if full."""
        self.events.insert_multiple(entries)
        overflow = len(self.events) - self._capacity
        if overflow > 0:
            self.drop_oldest(overflow)

    def drop_oldest(self, count: int) -> None:
        oldest = [document.doc_id for document in self.waiting()[:count]]
        self.events.remove(doc_ids=oldest)
        self.change_meta(dropped=self.meta()["dropped"] + len(oldest))
        log.warning(
            "telemetry outbox full (%d events): dropped the %d oldest", self._capacity, len(oldest)
        )

    def remove_uuids(self, uuids: set[str]) -> int:
        found = [
            document.doc_id
            for document in self.events.all()
            if isinstance(document.get("uuid"), str) and document["uuid"] in uuids
        ]
        if found:
            self.events.remove(doc_ids=found)
        return len(found)

    def meta(self) -> dict[str, Any]:
        """The checked fields of ``meta`` (a bad one reset in the file, and logged once)."""
        document = self.meta_table.get(doc_id=ONLY_DOC_ID)
        found = dict(document) if isinstance(document, dict) else {}
        bad = [name for name, ok in META_FIELDS.items() if name in found and not ok(found[name])]
        if bad:
            self._once.warning(
                f"meta-{'-'.join(bad)}",
                "telemetry outbox: reset %s, which held a value of the wrong type",
                ", ".join(bad),
            )
            for name in bad:
                del found[name]
            self.meta_table.truncate()
            self.meta_table.insert(Document(found, doc_id=ONLY_DOC_ID))
        found.setdefault("dropped", 0)
        return found

    def change_meta(self, **values: Any) -> None:
        info = self.meta()
        info.update(values)
        self.meta_table.upsert(Document(info, doc_id=ONLY_DOC_ID))

    def read_session(self) -> dict[str, Any]:
        document = self.session.get(doc_id=ONLY_DOC_ID)
        return dict(document) if isinstance(document, dict) else {}

    def write_session(self, state: dict[str, Any]) -> None:
        self.session.truncate()
        self.session.insert(Document(state, doc_id=ONLY_DOC_ID))


class Outbox:
    """The outbox of one config file; thread- and process-safe."""

    def __init__(self, place: StatePlace, capacity: int = CAPACITY) -> None:
        self.place = place
        self.path = place.outbox
        self.capacity = capacity
        self._lock: FileLock = lock_for(place.outbox_lock)
        self.sender_lock: FileLock = lock_for(place.send_lock)
        self.wire_lock: FileLock = lock_for(place.wire_lock)
        self._once = OnceLog(log)

    # -- transactions ------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Iterator[OutboxTransaction]:
        """Under the outbox lock: the file as it is now, written once at the end if changed
        (not when the block raises). Raises OSError (FileProblem for a planted file)."""
        make_state_folder(self.place.folder)
        with self._lock.hold(timeout), self._opened() as (database, storage):
            transaction = OutboxTransaction(database, self.capacity, self._once)
            taken_over = _take_over_old_outbox(self, transaction)
            yield transaction
            storage.commit()
            if taken_over is not None:
                # Only now that its events are safe here: a write that fails, or a kill
                # before it, leaves the old file to be taken over again.
                _remove_old_outbox(self, taken_over)

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

    def add(self, event: Event) -> None:
        """Store ``event``, dropping the oldest when full."""
        with self.transaction() as outbox:
            outbox.add(event)

    def pending(self) -> list[dict[str, Any]]:
        """The stored entries, oldest first, as they are (checked only when sent).
        Lock-free: a write replaces the file whole, so a read sees one version."""
        events = self._tables().get(EVENTS_TABLE, {})
        return [dict(events[key]) for key in sorted(events, key=_doc_number)]

    def stats(self) -> OutboxStats:
        try:
            _check_folder(self.place.folder)
            tables = load_tables(self.path) or {}
        except (JSONFileError, FileProblem) as exc:
            return OutboxStats(0, 0, None, str(exc))
        info = tables.get(META_TABLE, {}).get(str(ONLY_DOC_ID), {})
        events = tables.get(EVENTS_TABLE, {})
        dropped = info.get("dropped")
        delivered = info.get("lastDelivery")
        return OutboxStats(
            pending=len(events) if isinstance(events, dict) else 0,
            dropped=dropped if _count(dropped) else 0,
            last_delivery=delivered if isinstance(delivered, str) else None,
        )

    def meta(self) -> dict[str, Any]:
        """The checked fields of ``meta``, read without a lock (nothing is reset here)."""
        found = self._tables().get(META_TABLE, {}).get(str(ONLY_DOC_ID), {})
        found = found if isinstance(found, dict) else {}
        return {
            name: found[name]
            for name, ok in META_FIELDS.items()
            if name in found and ok(found[name])
        }

    def session(self) -> dict[str, Any]:
        """The instance session as stored, read without a lock (checked by the reader)."""
        found = self._tables().get(SESSION_TABLE, {}).get(str(ONLY_DOC_ID), {})
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
            if overflow > 0:
                outbox.drop_oldest(overflow)
        return max(overflow, 0)

    def clear(self, wire_wait: float = WIRE_WAIT_SECONDS) -> Cleared:
        """Empty the outbox now. Still under its lock (so no request can start), look at
        the wire: a request that started before may still be under way."""
        if not os.path.lexists(self.path) and not os.path.lexists(self.place.folder):
            return Cleared(0, Wire.IDLE)
        with self.transaction() as outbox:
            count = len(outbox.events)
            if count:
                outbox.events.truncate()
            try:
                if not self.wire_lock.busy():
                    wire = Wire.IDLE
                else:
                    wire = Wire.BUSY if self.wire_lock.busy(wire_wait) else Wire.FINISHED
            except FileProblem:
                # Not our lock file (a planted link or FIFO): no request can take it, so
                # none is on the wire; the events are discarded all the same.
                wire = Wire.IDLE
        return Cleared(count, wire)

    @contextlib.contextmanager
    def sending(
        self, select: Callable[[list[dict[str, Any]], dict[str, Any]], Selection]
    ) -> Iterator[Selection]:
        """The last check before a request: under the outbox lock, ``select`` picks what
        to send from what waits now, given the outbox's ``meta`` (and names unusable
        entries, removed at once); if
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
                selection = select(entries, outbox.meta())
                if selection.unusable:
                    outbox.events.remove(
                        doc_ids=[doc_ids[id(entry)] for entry, _ in selection.unusable]
                    )
                if selection.send:
                    wire.enter_context(self.wire_lock.hold())
            yield selection

    def _tables(self) -> dict[str, Any]:
        try:
            _check_folder(self.place.folder)
            return load_tables(self.path) or {}
        except (JSONFileError, FileProblem):
            return {}


def _check_folder(folder: Path) -> None:
    """FileProblem when something else than a folder is where ours goes: a planted link
    is not followed by a reader either (what it leads to is nobody's outbox of ours)."""
    try:
        found = os.lstat(folder)
    except OSError:
        return
    if stat.S_ISLNK(found.st_mode):
        raise FileProblem(folder, "is a symbolic link where the plugin keeps its state; remove it")
    if not stat.S_ISDIR(found.st_mode):
        raise FileProblem(folder, "is not a folder; the plugin keeps its state there")


def _doc_number(key: str) -> int:
    return int(key) if key.isdigit() else 0


def _take_over_old_outbox(outbox: Outbox, into: OutboxTransaction) -> Path | None:
    """Events an older version left beside the config file join this outbox, once: only
    when the old file can be removed afterwards (else it would be taken over again).
    Returns the old file, to be removed once this transaction is written."""
    old = outbox.place.old_outbox
    if not os.path.lexists(old):
        return None
    if not os.access(old.parent, os.W_OK):
        outbox._once.warning(
            "old-outbox", "telemetry: %s cannot be removed, so its events were not taken over", old
        )
        return None
    try:
        mark = _identity_of(old)
        tables = load_tables(old) or {}
    except (JSONFileError, OSError) as exc:
        outbox._once.warning(
            "old-outbox", "telemetry: the old outbox %s is unusable (%s); left as it is", old, exc
        )
        return None
    if into.meta().get("oldOutbox") == mark:
        return old  # taken over before, and its removal failed: only that is left to do
    known = {document.get("uuid") for document in into.events.all()}
    events = tables.get(EVENTS_TABLE, {})
    # Checked for the wire when sent, like every stored entry.
    taken = [
        events[key]
        for key in sorted(events, key=_doc_number)
        if isinstance(events[key], dict) and events[key].get("uuid") not in known
    ]
    into.add_all(taken)
    info = tables.get(META_TABLE, {}).get(str(ONLY_DOC_ID), {})
    meta = into.meta()
    if isinstance(info, dict):
        if _count(info.get("dropped")):
            meta["dropped"] += info["dropped"]
        for name in ("lastDelivery", "lastRun"):
            if name not in meta and META_FIELDS[name](info.get(name)):
                meta[name] = info[name]
    into.change_meta(**meta, oldOutbox=mark)
    log.info("telemetry: took over %d waiting event(s) from %s", len(taken), old)
    return old


def _remove_old_outbox(outbox: Outbox, old: Path) -> None:
    old_locks = (old.with_name(old.name + end) for end in (".lock", ".send", ".wire", ".members"))
    for leftover in (old, *old_locks):
        try:
            os.unlink(leftover)
        except FileNotFoundError:
            pass
        except OSError as exc:
            outbox._once.warning(
                "old-outbox-left",
                "telemetry: could not remove %s (%s); its events were taken over already",
                leftover,
                exc.strerror or exc,
            )


def _identity_of(path: Path) -> str:
    """Which file is at ``path`` (not following a link): a replaced file is another one."""
    status = os.lstat(path)
    return f"{status.st_dev}:{status.st_ino}:{status.st_size}:{status.st_mtime_ns}"


def old_outbox_taken_over(place: StatePlace, meta: Mapping[str, Any]) -> bool:
    """Whether the older version's outbox still there was taken over already (its
    removal failed): its events are not waiting there any more."""
    try:
        return meta.get("oldOutbox") == _identity_of(place.old_outbox)
    except OSError:
        return False
