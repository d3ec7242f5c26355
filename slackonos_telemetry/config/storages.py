"""TinyDB storages: atomic writes, readable errors, one parse per change.

TinyDB's own ``JSONStorage`` rewrites its file in place, creates it on open and
parses it again for every operation; these never do any of that. Neither takes a
lock: a read-modify-write spans several storage calls, so the caller holds the
file's lock around the whole of it.

The contract of each, as TinyDB sees it (``read`` returns the tables, ``write``
takes them whole):
- ``FlatObjectStorage``: the operator's flat config object is document 1 of the
  default table. ``write`` does not render the object anew: it sets, in the file's
  own text, only the keys whose values changed (``jsontext``), so every other byte
  of the file stays as the operator wrote it.
- ``BufferedJSONStorage``: TinyDB's usual layout, for one transaction of one of our
  own files: read once, written once at ``commit``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

from tinydb import TinyDB
from tinydb.storages import Storage

from slackonos_telemetry.config.filecache import parsed_files
from slackonos_telemetry.config.files import read_text, replace_file
from slackonos_telemetry.config.jsonfile import JSONFileError, dumps, parse_json_object
from slackonos_telemetry.config.jsontext import edit_object_text

DEFAULT_TABLE = TinyDB.default_table_name
FLAT_DOCUMENT_ID = 1
# A host that rewrites the config in place (truncate, then write, as many programs do)
# leaves it empty or half written for a moment. The operator's file met in such a
# state, changed within the last SETTLE_RECENT_SECONDS, is read again once it changes,
# for at most SETTLE_SECONDS: a passing state is never taken for the file (a config
# error would withhold the events of that moment, and a writer would write over the
# text the host is about to put back). A file still broken after that is what it holds.
SETTLE_SECONDS = 0.5
SETTLE_RECENT_SECONDS = 1.0
_SETTLE_POLL_SECONDS = 0.005

Tables = dict[str, dict[str, Any]]
T = TypeVar("T")


def cached_object(
    path: Path, unique_keys: Collection[str] = (), empty_ok: bool = False, own: bool = False
) -> dict[str, Any] | None:
    """The file's object (None when missing), parsed once per change. Shared: read only.
    ``own``: one of our files (see ``files.read_text``)."""

    def parse() -> dict[str, Any] | None:
        text = read_text(path, own=own)
        return None if text is None else parse_json_object(path, text, unique_keys, empty_ok)

    return parsed_files.load(path, parse, (tuple(unique_keys), empty_ok, own))


def config_object(
    path: Path, unique_keys: Collection[str] = (), empty_ok: bool = False
) -> dict[str, Any] | None:
    """The operator's config object (None when missing), as ``cached_object`` reads it,
    seen through a rewrite in place (``SETTLE_SECONDS``). ``empty_ok``: a file that
    stays empty reads as ``{}`` (for a writer about to replace it)."""
    try:
        return settled(path, lambda: cached_object(path, unique_keys))
    except JSONFileError:
        if empty_ok and not (read_text(path) or "").strip():
            return {}
        raise


def settled(path: Path, read: Callable[[], T]) -> T:
    """``read()`` of the operator's file, again each time the file changes while it raises
    JSONFileError and was changed lately, for at most SETTLE_SECONDS."""
    give_up_at: float | None = None
    while True:
        before = _identity(path)
        try:
            return read()
        except JSONFileError:
            if before is None or abs(time.time() - before[3] / 1e9) >= SETTLE_RECENT_SECONDS:
                raise
            now = time.monotonic()
            give_up_at = now + SETTLE_SECONDS if give_up_at is None else give_up_at
            if not _changes(path, before, give_up_at):
                raise


def _identity(path: Path) -> tuple[int, int, int, int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def _changes(path: Path, before: tuple[int, int, int, int, int], until: float) -> bool:
    """Whether the file changes (or goes) before ``until`` (monotonic)."""
    while _identity(path) == before:
        if time.monotonic() >= until:
            return False
        time.sleep(_SETTLE_POLL_SECONDS)
    return True


class FlatObjectStorage(Storage):
    """A flat, hand-edited JSON object seen by TinyDB as document 1 of its default table.

    A writer's view: an empty file reads as ``{}``, which a write replaces; anything
    else that cannot be parsed raises JSONFileError and is never written.
    """

    def __init__(self, path: str | Path, unique_keys: Collection[str] = ()) -> None:
        self.path = Path(path)
        self.unique_keys = tuple(unique_keys)
        self._read: dict[str, Any] = {}

    def read(self) -> Tables | None:
        # A missing file is an empty object, still document 1: the file is always
        # exactly one document, so an upsert of it is always an update.
        self._read = dict(config_object(self.path, self.unique_keys, empty_ok=True) or {})
        return {DEFAULT_TABLE: {str(FLAT_DOCUMENT_ID): dict(self._read)}}

    def write(self, data: Tables) -> None:
        documents = data.get(DEFAULT_TABLE, {})
        unexpected = set(documents) - {str(FLAT_DOCUMENT_ID)}
        if unexpected or set(data) - {DEFAULT_TABLE}:
            raise ValueError("a flat config file holds exactly one document")
        document = documents.get(str(FLAT_DOCUMENT_ID), {})
        if set(self._read) - set(document):
            raise ValueError("the plugin never removes a key from the config file")
        changes = {
            key: value for key, value in document.items() if not _same(self._read, key, value)
        }
        if not changes:
            return
        # The file as it is now (the caller holds the lock; the host may not take it).
        try:
            text = settled(self.path, self._parsed_text)
        except JSONFileError:
            text = read_text(self.path) or ""
            parse_json_object(self.path, text, self.unique_keys, empty_ok=True)
        replace_file(self.path, edit_object_text(text, changes))

    def _parsed_text(self) -> str:
        """The file's text, checked to hold one object (an empty file is an error)."""
        text = read_text(self.path) or ""
        parse_json_object(self.path, text, self.unique_keys)
        return text


def _same(found: dict[str, Any], key: str, value: Any) -> bool:
    # A key TinyDB did not touch holds the very object read (NaN included, which equals
    # nothing); 1 == True in Python, while in the file they are different values.
    if key not in found:
        return False
    before = found[key]
    return before is value or (type(before) is type(value) and before == value)


class BufferedJSONStorage(Storage):
    """TinyDB's usual multi-table layout, for one transaction of a file of ours: the file
    is read once (from the parse cache, or ``loaded`` by the caller), every write stays
    in memory, and ``commit`` replaces the file once, atomically. A damaged file raises
    JSONFileError from ``read``."""

    def __init__(self, path: str | Path, loaded: Tables | None = None) -> None:
        self.path = Path(path)
        self._data: Tables | None = None if loaded is None else _private_copy(loaded)
        self.dirty = False

    def read(self) -> Tables | None:
        if self._data is None:
            self._data = _private_copy(load_tables(self.path) or {})
        return self._data

    def write(self, data: Tables) -> None:
        self._data = data
        self.dirty = True

    def commit(self) -> None:
        if self.dirty and self._data is not None:
            # Compact: the outbox is read by programs, and a smaller file is a faster write.
            replace_file(self.path, dumps(self._data, indent=None) + "\n", own=True)
            # The next transaction starts from what was written, not from a new parse.
            parsed_files.remember(self.path, self._data, _TABLES_VARIANT)
            self.dirty = False


# The cache key of a TinyDB file's parse (no unique keys, an empty file an error, ours).
_TABLES_VARIANT = ((), False, True)


def load_tables(path: Path) -> Tables | None:
    """A TinyDB file of ours (None when missing), parsed once per change. Shared: read only.

    Raises JSONFileError when the file is not a TinyDB layout: an object of tables,
    each an object of documents that are objects.
    """
    data = cached_object(path, own=True)
    if data is not None and not _well_formed(data):
        raise JSONFileError(path, "its tables or entries are not JSON objects")
    return data


def _well_formed(data: dict[str, Any]) -> bool:
    # TinyDB needs every table to map decimal document IDs to objects.
    return all(
        isinstance(table, dict)
        and all(key.isdecimal() and isinstance(entry, dict) for key, entry in table.items())
        for table in data.values()
    )


def _private_copy(data: Tables) -> Tables:
    # TinyDB changes documents in place; the parsed content is shared by the cache.
    return {name: {key: dict(doc) for key, doc in table.items()} for name, table in data.items()}
