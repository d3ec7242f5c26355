"""Reading a JSON object file with precise errors, and replacing it atomically.

Reading refuses whatever could hide an opt-out, with the line and column: text
that is not JSON (an empty file included: it may be what an interrupted write
left of a file that held one), JSON nested deeper than the parser follows, a
number too long to convert, and, where the caller names them, one of its own
keys given twice.

Writing keeps what is there: the file's owner and mode, a symlink (the write goes
to its target), and every value of other programs exactly, lone surrogates
included.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import stat
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

NEW_FILE_MODE = 0o600
NEW_DIR_MODE = 0o700

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONFileError(Exception):
    """A file that cannot be used as a JSON object: names the file and what is wrong."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


class _NumberTooLong(ValueError):
    def __init__(self, digits: str) -> None:
        super().__init__(digits)
        self.digits = digits


def read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist. Follows symlinks."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise JSONFileError(path, "is a directory, not a JSON file") from None
    except UnicodeDecodeError as exc:
        raise JSONFileError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise JSONFileError(path, f"cannot be read ({exc.strerror or exc})") from None


def parse_json_object(
    path: Path, text: str, unique_keys: Collection[str] = (), empty_ok: bool = False
) -> dict[str, Any]:
    """The object in ``text``, or JSONFileError naming what is wrong and where.

    ``unique_keys``: keys of the top-level object that must not be given twice
    (JSON allows it, and the last one would silently win). ``empty_ok``: an
    empty text is ``{}`` (for a writer about to replace it) instead of an error.
    """
    if not text.strip():
        if empty_ok:
            return {}
        raise JSONFileError(
            path,
            "is empty (line 1, column 1): an interrupted write may have emptied it; "
            "it must hold one JSON object",
        )
    # Keyed by id(), with the object kept alive so that no id is reused meanwhile.
    duplicates: dict[int, tuple[dict[str, Any], list[str]]] = {}

    def build_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs) and unique_keys:
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen and key in unique_keys:
                    duplicates.setdefault(id(result), (result, []))[1].append(key)
                seen.add(key)
        return result

    try:
        data = json.loads(
            text, object_pairs_hook=build_object, parse_int=_checked_int, parse_float=_checked_float
        )
    except json.JSONDecodeError as exc:
        raise JSONFileError(
            path, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except _NumberTooLong as exc:
        line, column = _position(text, max(text.find(exc.digits), 0))
        raise JSONFileError(
            path,
            f"holds a number ({_shortened(exc.digits)}) at line {line}, column {column} "
            "too large to read",
        ) from None
    except RecursionError:
        depth, offset = _deepest_nesting(text)
        line, column = _position(text, offset)
        raise JSONFileError(
            path, f"nested too deep to read ({depth} levels at line {line}, column {column})"
        ) from None
    if not isinstance(data, dict):
        line, column = _position(text, len(text) - len(text.lstrip()))
        raise JSONFileError(
            path,
            f"must hold one JSON object, found {describe_json_value(data)} "
            f"at line {line}, column {column}",
        )
    for key in duplicates.get(id(data), (data, []))[1]:
        line, column = _position(text, _second_key_offset(text, key))
        raise JSONFileError(
            path,
            f"gives {key!r} twice (again at line {line}, column {column}): "
            "which one is meant cannot be known",
        )
    return data


def dumps(data: Any, indent: int | None = 2) -> str:
    """JSON text that any UTF-8 reader takes back as ``data``.

    ``ensure_ascii=False`` keeps a person's accents and emoji readable; the one
    thing it cannot write is a lone surrogate (Node writes them for a cut emoji),
    which goes out as its ``\\uXXXX`` escape, exactly as it came in.
    """
    separators = (",", ": ") if indent is not None else (",", ":")
    text = json.dumps(data, indent=indent, ensure_ascii=False, separators=separators)
    return _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def write_json_atomic(path: Path, data: Any, indent: int | None = 2) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, whole.

    A symlink is kept and its target replaced. The file keeps its mode and its
    owner; a new file gets mode 0600 (and, made by root in another user's folder,
    that user as its owner, so a bot running as that user can still read it).
    The caller holds the file's lock: leftovers of writers killed mid-write are
    removed here, since no other writer can be running.
    """
    try:
        text = dumps(data, indent) + "\n"
    except RecursionError:
        raise OSError(errno.EINVAL, "nested too deep to write") from None
    target = Path(os.path.realpath(path))
    make_private_folder(target.parent)
    _remove_leftover_temp_files(target)
    try:
        existing: os.stat_result | None = target.stat()
    except FileNotFoundError:
        existing = None
    mode = stat.S_IMODE(existing.st_mode) if existing else NEW_FILE_MODE
    owner = _owner_to_keep(existing, target.parent)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, NEW_FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if owner is not None:
                _give_to(handle.fileno(), owner, target)
            # fchmod, not the open() mode, so the umask cannot widen or narrow it.
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _fsync_directory(target.parent)


def make_private_folder(folder: Path) -> None:
    """Create ``folder`` (mode 0700) if missing; a file in its way is an error."""
    if folder.is_dir():
        return
    try:
        folder.mkdir(mode=NEW_DIR_MODE, parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder)) from None
    owner = _owner_to_keep(None, folder.parent)
    if owner is not None:
        with contextlib.suppress(OSError):
            os.chown(folder, *owner)


def give_new_file_to_folder_owner(fd: int, folder: Path) -> None:
    """For files made by root in a user's folder (lock files): that user owns them."""
    owner = _owner_to_keep(None, folder)
    if owner is not None:
        with contextlib.suppress(OSError):
            os.fchown(fd, *owner)


def describe_json_value(value: Any) -> str:
    """How a person would name a JSON value in a message: its type, or the value itself
    for a short scalar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if value.strip() else "an empty string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (int, float)):
        return "a number" if len(repr(value)) > 20 else repr(value)
    return type(value).__name__


def _owner_to_keep(existing: os.stat_result | None, folder: Path) -> tuple[int, int] | None:
    """The (uid, gid) a rewritten or new file must get, when not simply ours."""
    euid, egid = os.geteuid(), os.getegid()
    if existing is not None:
        owner = (existing.st_uid, existing.st_gid)
        return None if owner == (euid, egid) else owner
    if euid != 0:
        return None
    try:
        folder_stat = folder.stat()
    except OSError:
        return None
    owner = (folder_stat.st_uid, folder_stat.st_gid)
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


def _checked_int(digits: str) -> int:
    try:
        return int(digits)
    except ValueError:
        raise _NumberTooLong(digits) from None


def _checked_float(text: str) -> float:
    # 1e400 parses as inf, which would be written back as Infinity: not JSON any more.
    value = float(text)
    if math.isinf(value):
        raise _NumberTooLong(text)
    return value


def _shortened(digits: str) -> str:
    return digits if len(digits) <= 24 else f"{digits[:12]}... {len(digits)} characters"


def _deepest_nesting(text: str) -> tuple[int, int]:
    """The deepest nesting of arrays and objects, and where it is first reached."""
    depth = deepest = deepest_at = 0
    in_string = escaped = False
    for offset, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest, deepest_at = depth, offset
        elif char in "]}":
            depth -= 1
    return deepest, deepest_at


def _second_key_offset(text: str, key: str) -> int:
    pattern = re.compile(re.escape(json.dumps(key)) + r"\s*:")
    matches = list(pattern.finditer(text))
    return matches[1].start() if len(matches) > 1 else 0


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


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
