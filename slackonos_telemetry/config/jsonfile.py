"""JSON object text: parsed with precise errors, written back so any reader takes it.

Parsing refuses whatever could hide an opt-out, with the line and column: text that
is not JSON (an empty file included: it may be what an interrupted write left of a
file that held one), JSON nested deeper than the parser follows, a number too long
to convert, and, where the caller names them, one of its own keys given twice.
Writing keeps every value of other programs exactly, lone surrogates included. The
file system side (reading, atomic replace) is ``files.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

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
        data = json.loads(text, object_pairs_hook=build_object, parse_int=_checked_int)
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


def _checked_int(digits: str) -> int:
    try:
        return int(digits)
    except ValueError:
        raise _NumberTooLong(digits) from None


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
