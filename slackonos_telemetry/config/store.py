"""The shared config file, read and written through TinyDB.

The host bot owns the file; the plugin owns a few keys in it. Every write is a
read-modify-write under the plugin's config lock (in its state folder), so
concurrent writers of ours (threads, the CLI, a second bot) never lose each other's
keys; a write changes only the lines of the keys it sets (``storages.py``); and a
file that cannot be parsed is reported, never written over (an empty one excepted:
it holds nothing to lose, and a write may give it content again).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.table import Document

from slackonos_telemetry.config.files import make_state_folder
from slackonos_telemetry.config.jsonfile import JSONFileError
from slackonos_telemetry.config.keys import OWNED_KEYS
from slackonos_telemetry.config.locking import LockTimeout, lock_for
from slackonos_telemetry.config.paths import config_lock_path
from slackonos_telemetry.config.storages import FLAT_DOCUMENT_ID, FlatObjectStorage, config_object

ConfigReadError = JSONFileError


class ConfigWriteError(Exception):
    """The config file could not be saved; it was left as it was."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot save {path}: {reason}")
        self.path = path
        self.reason = reason

    @property
    def read_only(self) -> bool:
        """The file cannot be written at all (a read-only mount, no permission)."""
        return self.reason in (_READ_ONLY, _DENIED)


Decide = Callable[[dict[str, Any]], Mapping[str, Any] | None]

_READ_ONLY = "the file system is read-only"
_DENIED = "permission denied"


class ConfigStore:
    """One config file: reads parsed once per change, and writes that keep every key
    (and every byte) they do not set."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Mapping[str, Any]:
        """The file's object as it is now ({} when missing). Shared with other readers:
        never change it. Raises ConfigReadError (an empty file included)."""
        return config_object(self.path, OWNED_KEYS) or {}

    def update(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Set ``changes``; returns the object as it was before."""
        before, _ = self.modify(lambda _current: changes)
        return before

    def modify(self, decide: Decide) -> tuple[dict[str, Any], dict[str, Any]]:
        """Under the lock, show ``decide`` the current object and write what it returns.

        ``decide`` returning None (or nothing) writes nothing. Returns (before, after).
        Raises ConfigReadError for a file that cannot be parsed (left untouched)
        and ConfigWriteError when the new file cannot be written.
        """
        try:
            with self._locked():
                database = TinyDB(self.path, storage=FlatObjectStorage, unique_keys=OWNED_KEYS)
                table = database.table(TinyDB.default_table_name)
                current = table.get(doc_id=FLAT_DOCUMENT_ID)
                before = dict(current) if isinstance(current, dict) else {}
                changes = decide(dict(before))
                if not changes:
                    return before, before
                table.upsert(Document(dict(changes), doc_id=FLAT_DOCUMENT_ID))
                return before, {**before, **changes}
        except JSONFileError:
            raise
        except LockTimeout:
            raise ConfigWriteError(
                self.path, "another process holds its lock file; try again"
            ) from None
        except OSError as exc:
            raise ConfigWriteError(self.path, _reason(exc)) from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = config_lock_path(self.path)
        with contextlib.ExitStack() as held:
            try:
                make_state_folder(lock_path.parent)
                held.enter_context(lock_for(lock_path).hold())
            except LockTimeout:
                raise
            except OSError as exc:
                if os.access(Path(os.path.realpath(self.path)).parent, os.W_OK):
                    # The config could be written: the state folder is the problem.
                    raise ConfigWriteError(
                        self.path, f"its lock cannot be kept in {lock_path.parent}: {_reason(exc)}"
                    ) from None
                # Nowhere to keep a lock, and the config's folder is not writable either:
                # the write fails on its own, with the file's own reason.
            yield


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return _READ_ONLY
    if exc.errno == errno.EACCES:
        return _DENIED
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    return exc.strerror or str(exc)
