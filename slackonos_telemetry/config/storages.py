"""TinyDB storages with atomic writes and readable errors.

TinyDB's own ``JSONStorage`` rewrites its file in place and creates it on open;
these never do either. Neither takes a lock: a read-modify-write spans several
storage calls, so the caller holds the file's lock around the whole of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage

from slackonos_telemetry.config.jsonfile import read_json_object, write_json_atomic

DEFAULT_TABLE = TinyDB.default_table_name
FLAT_DOCUMENT_ID = 1


class FlatObjectStorage(Storage):
    """A flat, hand-edited JSON object seen by TinyDB as document 1 of its default table.

    Every key of the object is a field of that document, so a write through
    TinyDB keeps every key it did not touch, with its value, in its place.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        # A missing file is an empty object, still document 1: the file is always
        # exactly one document, so an upsert of it is always an update.
        data = read_json_object(self.path)
        return {DEFAULT_TABLE: {str(FLAT_DOCUMENT_ID): data or {}}}

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        documents = data.get(DEFAULT_TABLE, {})
        unexpected = set(documents) - {str(FLAT_DOCUMENT_ID)}
        if unexpected or set(data) - {DEFAULT_TABLE}:
            raise ValueError("a flat config file holds exactly one document")
        write_json_atomic(self.path, documents.get(str(FLAT_DOCUMENT_ID), {}))


class AtomicJSONStorage(Storage):
    """TinyDB's usual multi-table JSON layout, replaced atomically on every write."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        return read_json_object(self.path)

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        write_json_atomic(self.path, data)
