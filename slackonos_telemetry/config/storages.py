"""TinyDB storages: atomic writes, readable errors, one parse per change.

TinyDB's own ``JSONStorage`` rewrites its file in place, creates it on open and
parses it again for every operation; these never do any of that. Neither takes
a lock: a read-modify-write spans several storage calls, so the caller holds the
file's lock around the whole of it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage

from slackonos_telemetry.config.filecache import parsed_files
from slackonos_telemetry.config.jsonfile import (
    JSONFileError,
    parse_json_object,
    read_text,
    write_json_atomic,
)

DEFAULT_TABLE = TinyDB.default_table_name
FLAT_DOCUMENT_ID = 1

Tables = dict[str, dict[str, Any]]


# The cache key of a TinyDB file's parse (no unique keys, an empty file an error).
_TABLES_VARIANT = ((), False)


def cached_object(
    path: Path, unique_keys: Collection[str] = (), empty_ok: bool = False
) -> dict[str, Any] | None:
    """The file's object (None when missing), parsed once per change. Shared: read only."""

    def parse() -> dict[str, Any] | None:
        text = read_text(path)
        return None if text is None else parse_json_object(path, text, unique_keys, empty_ok)

    return parsed_files.load(path, parse, (tuple(unique_keys), empty_ok))


class FlatObjectStorage(Storage):
    """A flat, hand-edited JSON object seen by TinyDB as document 1 of its default table.

    Every key of the object is a field of that document, so a write through
    TinyDB keeps every key it did not touch, with its value, in its place. It is
    a writer's view: an empty file reads as ``{}``, which the write replaces;
    anything else that cannot be parsed raises JSONFileError and is never written.
    """

    def __init__(self, path: str | Path, unique_keys: Collection[str] = ()) -> None:
        self.path = Path(path)
        self.unique_keys = tuple(unique_keys)

    def read(self) -> Tables | None:
        # A missing file is an empty object, still document 1: the file is always
        # exactly one document, so an upsert of it is always an update.
        data = cached_object(self.path, self.unique_keys, empty_ok=True)
        return {DEFAULT_TABLE: {str(FLAT_DOCUMENT_ID): dict(data or {})}}

    def write(self, data: Tables) -> None:
        documents = data.get(DEFAULT_TABLE, {})
        unexpected = set(documents) - {str(FLAT_DOCUMENT_ID)}
        if unexpected or set(data) - {DEFAULT_TABLE}:
            raise ValueError("a flat config file holds exactly one document")
        write_json_atomic(self.path, documents.get(str(FLAT_DOCUMENT_ID), {}))


class BufferedJSONStorage(Storage):
    """TinyDB's usual multi-table layout, for one transaction: the file is read once
    (from the parse cache, or ``loaded`` by the caller), every write stays in memory,
    and ``commit`` replaces the file once, atomically. A damaged file raises
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
            write_json_atomic(self.path, self._data, indent=None)
            # The next transaction starts from what was written, not from a new parse.
            parsed_files.remember(self.path, self._data, _TABLES_VARIANT)
            self.dirty = False


def load_tables(path: Path) -> Tables | None:
    """A TinyDB file's tables (None when missing), parsed once per change. Shared: read only.

    Raises JSONFileError when the file is not a TinyDB layout: an object of
    tables, each an object of documents that are objects.
    """
    data = cached_object(path)
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
