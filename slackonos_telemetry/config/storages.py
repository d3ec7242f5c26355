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

from collections.abc import Collection
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage

from slackonos_telemetry.config.filecache import parsed_files
from slackonos_telemetry.config.files import read_text, replace_file
from slackonos_telemetry.config.jsonfile import JSONFileError, dumps, parse_json_object
from slackonos_telemetry.config.jsontext import edit_object_text

DEFAULT_TABLE = TinyDB.default_table_name
FLAT_DOCUMENT_ID = 1

Tables = dict[str, dict[str, Any]]


def cached_object(
    path: Path, unique_keys: Collection[str] = (), empty_ok: bool = False, own: bool = False
) -> dict[str, Any] | None:
    """The file's object (None when missing), parsed once per change. Shared: read only.
    ``own``: one of our files (see ``files.read_text``)."""

    def parse() -> dict[str, Any] | None:
        text = read_text(path, own=own)
        return None if text is None else parse_json_object(path, text, unique_keys, empty_ok)

    return parsed_files.load(path, parse, (tuple(unique_keys), empty_ok, own))


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
        self._read = dict(cached_object(self.path, self.unique_keys, empty_ok=True) or {})
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
        text = read_text(self.path) or ""
        # The file as it is now (the caller holds the lock; the host may not take it).
        parse_json_object(self.path, text, self.unique_keys, empty_ok=True)
        replace_file(self.path, edit_object_text(text, changes))


def _same(found: dict[str, Any], key: str, value: Any) -> bool:
    # 1 == True in Python; in the file they are different values.
    return key in found and type(found[key]) is type(value) and found[key] == value


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
