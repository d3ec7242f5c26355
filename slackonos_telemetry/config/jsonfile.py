"""Reading a JSON object file with precise errors, and replacing it atomically."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

NEW_FILE_MODE = 0o600
NEW_DIR_MODE = 0o700


class JSONFileError(Exception):
    """A file that cannot be used as a JSON object: names the file and what is wrong."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The file's object, or None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise JSONFileError(path, "is a directory, not a JSON file") from None
    except UnicodeDecodeError as exc:
        raise JSONFileError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise JSONFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not text.strip():
        # An empty file is what a hand edit or `touch` leaves: nothing is set yet.
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JSONFileError(
            path, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        line, column = _start_of_value(text)
        raise JSONFileError(
            path,
            f"must hold one JSON object, found {_json_type(data)} at line {line}, column {column}",
        )
    return data


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, whole.

    The caller holds the file's lock: leftovers of writers killed mid-write are
    removed here, since no other writer can be running.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    path.parent.mkdir(mode=NEW_DIR_MODE, parents=True, exist_ok=True)
    _remove_leftover_temp_files(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # fchmod, not the open() mode, so the umask cannot widen or narrow it.
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _fsync_directory(path.parent)


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


def _start_of_value(text: str) -> tuple[int, int]:
    offset = len(text) - len(text.lstrip())
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null"
