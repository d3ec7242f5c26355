"""A lock that serializes writers of one file across threads and processes.

The lock is an advisory ``flock`` on ``<file>.lock`` beside the file. The kernel
drops it when its holder dies, so a writer killed mid-write never leaves the
file locked. One object per lock file is shared by the whole process: two
``flock`` descriptors on one file would block each other even in one thread.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

DEFAULT_TIMEOUT_SECONDS = 10.0
_POLL_SECONDS = 0.005


class LockTimeout(OSError):
    """Another process held the lock for longer than we were willing to wait."""


class PathLock:
    """Re-entrant in one thread, exclusive across threads and processes."""

    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def hold(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Iterator[None]:
        if not self._thread_lock.acquire(timeout=timeout):
            raise LockTimeout(f"timed out waiting for {self.lock_path}")
        try:
            if self._depth == 0:
                self._fd = _acquire_file_lock(self.lock_path, timeout)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    _release_file_lock(self._fd)
                    self._fd = None
        finally:
            self._thread_lock.release()


_registry: dict[str, PathLock] = {}
_registry_guard = threading.Lock()


def lock_for(path: Path) -> PathLock:
    """The process-wide lock guarding ``path`` (its lock file is ``path`` + ``.lock``)."""
    lock_path = Path(os.path.abspath(str(path) + ".lock"))
    with _registry_guard:
        lock = _registry.get(str(lock_path))
        if lock is None:
            lock = _registry[str(lock_path)] = PathLock(lock_path)
        return lock


def _acquire_file_lock(lock_path: Path, timeout: float) -> int:
    # The lock is taken before the first write, which would make the folder anyway.
    try:
        lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(
            errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(lock_path.parent)
        ) from None
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    if fcntl is None:  # pragma: no cover - no inter-process lock without fcntl
        return fd
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LockTimeout(f"timed out waiting for {lock_path}") from None
            time.sleep(_POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise


def _release_file_lock(fd: int) -> None:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
