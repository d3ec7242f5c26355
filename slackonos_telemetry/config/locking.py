"""Locks that serialize the users of one file across threads and processes.

Each lock is an advisory ``flock`` on a lock file beside the file it guards. The
kernel drops it when its holder dies, so a process killed mid-write never leaves
a file locked. One object per lock file is shared by the whole process (two
``flock`` descriptors on one file would block each other even in one thread).

After a fork, the child starts with a fresh registry: a lock held by a parent's
thread at the moment of the fork would otherwise stay held forever in the child,
whose copy of that thread does not exist.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from slackonos_telemetry.config.jsonfile import give_new_file_to_folder_owner, make_private_folder

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

DEFAULT_TIMEOUT_SECONDS = 10.0
_POLL_SECONDS = 0.005


class LockTimeout(OSError):
    """Another thread or process held the lock for longer than we were willing to wait."""


class PathLock:
    """Re-entrant in one thread, exclusive across threads and processes."""

    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def hold(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Iterator[None]:
        deadline = time.monotonic() + timeout
        if not self._thread_lock.acquire(timeout=max(timeout, 0.0)):
            raise LockTimeout(f"timed out waiting for {self.lock_path}")
        try:
            if self._depth == 0:
                self._fd = _acquire(self.lock_path, deadline, shared=False)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    _release(self._fd)
                    self._fd = None
        finally:
            self._thread_lock.release()

    def busy(self, wait: float = 0.0) -> bool:
        """Whether another thread or process still holds the lock after ``wait`` seconds."""
        try:
            with self.hold(timeout=wait):
                return False
        except LockTimeout:
            return True

    def _forget_after_fork(self) -> None:
        if self._fd is not None:
            # The parent's thread holds this lock; the child's copy of the
            # descriptor must not keep it held once the parent lets go.
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class SharedHold:
    """A shared ``flock`` held for as long as this process takes part in something, so
    that others can tell whether anyone does (``others_hold``). Counted: each ``take``
    is matched by a ``drop``, and the lock is let go with the last one."""

    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        self._fd: int | None = None
        self._count = 0
        self._guard = threading.Lock()

    def take(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        with self._guard:
            if self._fd is None:
                self._fd = _acquire(self.lock_path, time.monotonic() + timeout, shared=True)
            self._count += 1

    def drop(self) -> None:
        with self._guard:
            self._count = max(0, self._count - 1)
            if self._count == 0 and self._fd is not None:
                _release(self._fd)
                self._fd = None

    def others_hold(self) -> bool:
        """Whether anyone else holds the lock: another process, or another taker in this
        one (a hold of this process's other takers counts; the caller's own must be
        dropped, or not yet taken, when it asks)."""
        with self._guard:
            if self._count > 0:
                return True
        fd = _open_lock_file(self.lock_path)
        try:
            if fcntl is None:  # pragma: no cover
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def _forget_after_fork(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        self._count = 0


_Lockish = TypeVar("_Lockish", "PathLock", "SharedHold")

_registry: dict[str, PathLock] = {}
_shared: dict[str, SharedHold] = {}
_registry_guard = threading.Lock()


def lock_for(path: Path, suffix: str = ".lock") -> PathLock:
    """The process-wide lock guarding ``path``: its lock file is ``path`` + ``suffix``,
    beside the file a symlink points to, so the link and its target share one lock."""
    return _one_per_file(_registry, PathLock, path, suffix)


def shared_hold_for(path: Path, suffix: str) -> SharedHold:
    """The process-wide shared hold on ``path`` + ``suffix`` (beside a symlink's target)."""
    return _one_per_file(_shared, SharedHold, path, suffix)


def _one_per_file(
    registry: dict[str, _Lockish], make: Callable[[Path], _Lockish], path: Path, suffix: str
) -> _Lockish:
    lock_path = Path(os.path.realpath(path) + suffix)
    with _registry_guard:
        found = registry.get(str(lock_path))
        if found is None:
            found = registry[str(lock_path)] = make(lock_path)
        return found


def reset_after_fork() -> None:
    """In a forked child: forget every lock of the parent (see the module's docstring)."""
    global _registry, _shared, _registry_guard
    for lock in list(_registry.values()):
        lock._forget_after_fork()
    for hold in list(_shared.values()):
        hold._forget_after_fork()
    _registry, _shared, _registry_guard = {}, {}, threading.Lock()


def _open_lock_file(lock_path: Path) -> int:
    # The lock is taken before the first write, which would make the folder anyway.
    make_private_folder(lock_path.parent)
    flags = os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(lock_path, os.O_RDWR | flags, 0o600)
    except PermissionError as denied:
        # flock works on a descriptor opened for reading too (a lock file made by
        # another user that we may read).
        try:
            return os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            raise denied from None
    give_new_file_to_folder_owner(fd, lock_path.parent)
    return fd


def _acquire(lock_path: Path, deadline: float, shared: bool) -> int:
    fd = _open_lock_file(lock_path)
    if fcntl is None:  # pragma: no cover - no inter-process lock without fcntl
        return fd
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LockTimeout(f"timed out waiting for {lock_path}") from None
            time.sleep(_POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise


def _release(fd: int) -> None:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
