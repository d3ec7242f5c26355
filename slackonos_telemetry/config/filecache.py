"""Each file parsed once per change: parsed content reused while the file is unchanged.

A file is "unchanged" while its identity (device, inode, size, mtime and ctime
in nanoseconds) is the one seen when it was parsed. An atomic replace makes a
new inode; an edit in place changes the times. One case slips through: an edit
of the same size within one tick of the file system's clock (4 ms on Linux, up
to 2 s elsewhere) keeps every field. So, as git does with its index ("racily
clean" entries), a file changed within the last RACY_SECONDS is never trusted
from the cache: it is parsed again until it has been still for that long.

What a process wrote itself, with an atomic replace, may be remembered as written
(``remember``): the replace gives the file a new inode, so any later writer's
replace is seen; only an edit in place within the same clock tick would not be, which
is why this is used for the outbox, which people do not edit, and never for the
config file, which they do.

The cache is process-wide (a bot builds many readers of one file), made anew in a
forked child, and keeps only the newest parse of each file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from slackonos_telemetry.forksafe import PerProcess

RACY_SECONDS = 2.0

T = TypeVar("T")


@dataclass(frozen=True)
class FileIdentity:
    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, status: os.stat_result) -> FileIdentity:
        return cls(
            status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns
        )

    def racy(self, now: float) -> bool:
        # The content's time: a chmod or utime moves only ctime, which the identity holds.
        return abs(now - self.mtime_ns / 1e9) < RACY_SECONDS


@dataclass(frozen=True)
class _Entry:
    identity: FileIdentity
    value: Any
    written_here: bool = False


class _Entries:
    def __init__(self) -> None:
        self.found: dict[tuple[str, Hashable], _Entry] = {}
        self.guard = threading.Lock()


class ParsedFileCache:
    def __init__(self) -> None:
        self._state: PerProcess[_Entries] = PerProcess(_Entries)

    def load(self, path: Path, parse: Callable[[], T], variant: Hashable = None) -> T:
        """``parse()``'s result for the file as it is now, parsing only when it changed.

        ``variant`` tells apart parses of one file with different rules. What
        ``parse`` raises passes through and nothing is cached. The result is shared:
        callers must not change it.
        """
        key = (os.path.realpath(path), variant)
        identity = _identity(path)
        entries = self._state.get()
        if identity is not None:
            with entries.guard:
                entry = entries.found.get(key)
            trusted = entry is not None and (entry.written_here or not identity.racy(time.time()))
            if entry is not None and trusted and entry.identity == identity:
                return entry.value  # type: ignore[no-any-return]
        value = parse()
        # Stat again: a change while we parsed must not be cached under the new identity.
        if identity is not None and identity == _identity(path):
            with entries.guard:
                entries.found[key] = _Entry(identity, value)
        return value

    def remember(self, path: Path, value: Any, variant: Hashable = None) -> None:
        """``value`` is what this process just wrote to ``path`` with an atomic replace."""
        identity = _identity(path)
        entries = self._state.get()
        if identity is not None:
            with entries.guard:
                entries.found[(os.path.realpath(path), variant)] = _Entry(identity, value, True)


def _identity(path: Path) -> FileIdentity | None:
    try:
        return FileIdentity.of(os.stat(path))
    except OSError:
        return None


parsed_files = ParsedFileCache()
