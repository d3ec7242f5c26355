"""Locks that serialize the users of one file across threads and processes.

Each lock is a POSIX record lock (``fcntl.lockf``) on a lock file of ours, under a
re-entrant thread lock. Record locks, not ``flock``, because they belong to the
process, not to the open file: a forked child never holds, and can never release,
its parent's locks, and the kernel drops a process's locks when it ends, however it
ends. The one rule they bring: a process must not open a lock file twice (closing
any descriptor of a file drops the process's locks on it), so each process keeps
exactly one object, with one descriptor, per lock file (``lock_for``), made anew in
a forked child (``forksafe.PerProcess``).

``filelock`` is not used: its current release registers a process-wide audit hook
and at-fork hooks that wait on locks for up to 30 s, costs ~70 ms to import, and has
no shared mode, which the instance membership needs (ARCHITECTURE.md).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from slackonos_telemetry.config.files import open_lock_file
from slackonos_telemetry.forksafe import PerProcess

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

DEFAULT_TIMEOUT_SECONDS = 10.0
_POLL_SECONDS = 0.005


class LockTimeout(OSError):
    """Another thread or process held the lock for longer than we were willing to wait."""


class _LockFile:
    """The one descriptor this process keeps on a lock file, opened on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def fd(self) -> int:
        if self._fd is None:
            self._fd = open_lock_file(self.path)
        return self._fd

    def try_lock(self, mode: int) -> bool:
        if fcntl is None:  # pragma: no cover - no inter-process lock without fcntl
            return True
        try:
            fcntl.lockf(self.fd(), mode | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            return False
        return True

    def lock_until(self, mode: int, deadline: float) -> None:
        while not self.try_lock(mode):
            if time.monotonic() >= deadline:
                raise LockTimeout(f"timed out waiting for {self.path}")
            time.sleep(_POLL_SECONDS)

    def unlock(self) -> None:
        # The descriptor stays open: closing it is what a second open must never do.
        if fcntl is not None and self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)


class FileLock:
    """Exclusive across threads and processes; re-entrant in one thread."""

    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        self._file = _LockFile(lock_path)
        self._thread_lock = threading.RLock()
        self._depth = 0

    @contextmanager
    def hold(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Iterator[None]:
        deadline = time.monotonic() + timeout
        if not self._thread_lock.acquire(timeout=max(timeout, 0.0)):
            raise LockTimeout(f"timed out waiting for {self.lock_path}")
        try:
            if self._depth == 0:
                self._file.lock_until(_EXCLUSIVE, deadline)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._file.unlock()
        finally:
            self._thread_lock.release()

    def busy(self, wait: float = 0.0) -> bool:
        """Whether another thread or process still holds the lock after ``wait`` seconds."""
        try:
            with self.hold(timeout=wait):
                return False
        except LockTimeout:
            return True


class SharedHold:
    """A shared lock this process holds for as long as it takes part in something, so
    that others can tell whether anyone else does (``others_hold``).

    Every take, drop and question is asked under one exclusive lock the caller holds
    (the outbox's), so the brief upgrade in ``others_hold`` never meets another taker.
    """

    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        self._file = _LockFile(lock_path)
        self.held = False

    def take(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        if not self.held:
            self._file.lock_until(_SHARED, time.monotonic() + timeout)
            self.held = True

    def drop(self) -> None:
        if self.held:
            self._file.unlock()
            self.held = False

    def others_hold(self) -> bool:
        """Whether another process holds the lock. An exclusive lock is tried on the same
        descriptor (our own shared lock never conflicts with it), then our state put back."""
        if not self._file.try_lock(_EXCLUSIVE):
            return True
        if self.held:
            self._file.lock_until(_SHARED, time.monotonic() + DEFAULT_TIMEOUT_SECONDS)
        else:
            self._file.unlock()
        return False


_EXCLUSIVE = fcntl.LOCK_EX if fcntl is not None else 0
_SHARED = fcntl.LOCK_SH if fcntl is not None else 0


class _Registry:
    def __init__(self) -> None:
        self.locks: dict[str, FileLock] = {}
        self.holds: dict[str, SharedHold] = {}
        self.guard = threading.Lock()


_registry: PerProcess[_Registry] = PerProcess(_Registry)


def lock_for(lock_path: Path) -> FileLock:
    """This process's one lock on ``lock_path``."""
    registry = _registry.get()
    key = os.path.abspath(lock_path)
    with registry.guard:
        found = registry.locks.get(key)
        if found is None:
            found = registry.locks[key] = FileLock(Path(key))
        return found


def shared_hold_for(lock_path: Path) -> SharedHold:
    """This process's one shared hold on ``lock_path``."""
    registry = _registry.get()
    key = os.path.abspath(lock_path)
    with registry.guard:
        found = registry.holds.get(key)
        if found is None:
            found = registry.holds[key] = SharedHold(Path(key))
        return found


@contextlib.contextmanager
def held(lock_path: Path, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Iterator[None]:
    with lock_for(lock_path).hold(timeout):
        yield
