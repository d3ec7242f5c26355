"""The file system work of the plugin: reading without blocking, replacing atomically, and
our own files made so that nobody else's can be passed off as them.

Two kinds of file:
- The operator's config file. It may be a symlink: reads and writes go to its target
  and the link stays. A rewrite keeps the file's owner and mode.
- Our own files (the state folder, the outbox, lock files). The folder is made by us,
  mode 0700, and must stay ours; a file in it is opened with ``O_NOFOLLOW`` and
  ``O_NONBLOCK`` and used only when it is a regular file, so a planted symlink, FIFO
  or device is refused instead of followed or waited on. A file is chowned only when
  we created it (root making state in a user's folder gives it to that user).

A refused file raises FileProblem: one clear line, naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from pathlib import Path

from slackonos_telemetry.config.jsonfile import JSONFileError

NEW_FILE_MODE = 0o600
NEW_DIR_MODE = 0o700
_READ_CHUNK = 1 << 16


class FileProblem(OSError):
    """One of our files that is not what it must be (a symlink or FIFO where a file of
    ours should be, a folder that is not ours): never followed, never used, left alone."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


def read_text(path: Path, *, own: bool = False) -> str | None:
    """The file's UTF-8 text, or None when it does not exist. Never blocks on a FIFO.
    ``own``: one of our files (never through a symlink; FileProblem when it is not a
    regular file). Raises JSONFileError when the text cannot be had."""
    flags = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)
    if own:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise JSONFileError(path, "is a directory, not a JSON file") from None
    except OSError as exc:
        if own and exc.errno == errno.ELOOP:
            raise _planted_link(path) from None
        raise JSONFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        status = os.fstat(fd)
        if stat.S_ISDIR(status.st_mode):
            raise JSONFileError(path, "is a directory, not a JSON file")
        if not stat.S_ISREG(status.st_mode):
            detail = f"is not a regular file ({_kind(status)})"
            raise FileProblem(path, f"{detail}; remove it") if own else JSONFileError(path, detail)
        chunks = []
        while chunk := os.read(fd, _READ_CHUNK):
            chunks.append(chunk)
    except FileProblem:
        # An OSError too: not to be taken for a damaged file (which is set aside).
        raise
    except OSError as exc:
        raise JSONFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONFileError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def replace_file(path: Path, text: str, *, own: bool = False) -> None:
    """Replace ``path`` with ``text`` so that a reader sees the old or the new file, whole.

    The operator's file (``own`` False): a symlink is kept and its target replaced; a
    missing folder is made (mode 0700); the file keeps its mode and owner, a new one gets
    0600. One of ours: written only when the path is a regular file or missing, in a
    folder made by ``make_state_folder``. The caller holds the file's lock, so temp files
    left by writers killed mid-write are removed here. Raises OSError.
    """
    if own:
        target = path
        existing = _own_file_status(path)
    else:
        target = Path(os.path.realpath(path))
        make_folder(target.parent)
        try:
            existing = target.stat()
        except FileNotFoundError:
            existing = None
    _remove_leftover_temp_files(target)
    mode = stat.S_IMODE(existing.st_mode) if existing and not own else NEW_FILE_MODE
    owner = _owner_for(existing, target.parent, keep_existing=not own)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temp, flags, NEW_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            if owner is not None:
                _give_to(handle.fileno(), owner, target)
            # fchmod, not the open() mode, so the umask cannot widen or narrow it.
            os.fchmod(handle.fileno(), mode)
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _fsync_directory(target.parent)


def make_folder(folder: Path) -> None:
    """Create the operator's config folder (mode 0700) if missing; a file in its way is
    an error. Made by root in a user's folder, it is given to that user."""
    if folder.is_dir():
        return
    try:
        folder.mkdir(mode=NEW_DIR_MODE, parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder)) from None
    owner = _owner_for(None, folder.parent)
    if owner is not None:
        with contextlib.suppress(OSError):
            os.chown(folder, *owner)


def make_state_folder(folder: Path) -> None:
    """Make our state folder (mode 0700, parents too) or check the one that is there: a
    real folder (not a symlink), ours, that nobody else may write. Raises OSError
    (FileProblem for a folder that is not ours)."""
    created = False
    if not os.path.lexists(folder):
        parent = folder.parent
        if not parent.is_dir():
            parent.mkdir(mode=NEW_DIR_MODE, parents=True, exist_ok=True)
        try:
            os.mkdir(folder, NEW_DIR_MODE)
            created = True
        except FileExistsError:
            pass
    status = os.lstat(folder)
    if stat.S_ISLNK(status.st_mode):
        raise FileProblem(folder, "is a symbolic link where the plugin keeps its state; remove it")
    if not stat.S_ISDIR(status.st_mode):
        raise FileProblem(folder, "is not a folder; the plugin keeps its state there")
    if created:
        owner = _owner_for(None, folder.parent)
        if owner is not None:
            with contextlib.suppress(OSError):
                os.chown(folder, *owner)
        return
    problem = state_folder_problem(status)
    if problem:
        raise FileProblem(folder, problem)


def state_folder_problem(status: os.stat_result) -> str | None:
    """Why a folder cannot hold our state, or None."""
    euid = os.geteuid()
    if euid != 0 and status.st_uid != euid:
        return (
            f"belongs to user {status.st_uid}, not to this process's user {euid}; "
            "run as that user or set TELEMETRY_STATE_DIR"
        )
    if stat.S_IMODE(status.st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            "may be written by other users, who could plant files there; "
            "make it writable by its owner only (chmod 700) or set TELEMETRY_STATE_DIR"
        )
    return None


def open_lock_file(path: Path) -> int:
    """A descriptor on the lock file ``path`` (created, mode 0600, when missing), opened
    for reading and writing (a POSIX write lock needs it). Raises OSError."""
    flags = os.O_RDWR | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    created = True
    try:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
        except FileExistsError:
            created = False
            fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _planted_link(path) from None
        raise
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise FileProblem(path, f"is not a regular file ({_kind(status)}); remove it")
        if created:
            owner = _owner_for(None, path.parent)
            if owner is not None:
                with contextlib.suppress(OSError):
                    os.fchown(fd, *owner)
    except BaseException:
        os.close(fd)
        raise
    return fd


def own_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be one of our files (a planted link, FIFO or device), or None (a
    regular file, or nothing there). Only looks: nothing is opened."""
    try:
        _own_file_status(path)
    except FileProblem as exc:
        return str(exc)
    except OSError:
        return None
    return None


def _own_file_status(path: Path) -> os.stat_result | None:
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(status.st_mode):
        raise _planted_link(path)
    if not stat.S_ISREG(status.st_mode):
        raise FileProblem(path, f"is not a regular file ({_kind(status)}); remove it")
    return status


def _planted_link(path: Path) -> FileProblem:
    return FileProblem(
        path, "is a symbolic link where the plugin keeps a file of its own; it was not followed"
    )


def _kind(status: os.stat_result) -> str:
    mode = status.st_mode
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a file"


def _owner_for(
    existing: os.stat_result | None, folder: Path, keep_existing: bool = True
) -> tuple[int, int] | None:
    """The (uid, gid) a rewritten or new file must get, when not simply ours: the owner of
    the file it replaces (the operator's config), or, for a file root makes in a user's
    folder, that user."""
    euid, egid = os.geteuid(), os.getegid()
    if existing is not None and keep_existing:
        owner = (existing.st_uid, existing.st_gid)
        return None if owner == (euid, egid) else owner
    if euid != 0:
        return None
    try:
        folder_status = folder.stat()
    except OSError:
        return None
    owner = (folder_status.st_uid, folder_status.st_gid)
    return None if owner[0] == 0 else owner


def _give_to(fd: int, owner: tuple[int, int], target: Path) -> None:
    uid, gid = owner
    try:
        os.fchown(fd, uid, gid)
        return
    except PermissionError:
        pass
    if uid == os.geteuid():
        with contextlib.suppress(PermissionError):
            os.fchown(fd, -1, gid)
            return
    raise PermissionError(
        errno.EPERM,
        f"it belongs to user {uid} and this process runs as user {os.geteuid()}; "
        "a rewrite would change its owner, so it was not saved (run as that user or root)",
        str(target),
    )


def _remove_leftover_temp_files(path: Path) -> None:
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
