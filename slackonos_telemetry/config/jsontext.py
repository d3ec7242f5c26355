"""Setting keys in the text of a hand-written JSON object so that the file keeps its look.

The config file belongs to the operator: they hand-edit it, keep it in git, and
their bot writes it too. A write of ours changes only the lines it must: an
existing member's value is replaced in place; a new key becomes the last member,
on its own line in the file's own indentation, ``:`` spacing and line ending,
with a comma added after the value before it (a one-line object grows on its
line). Every other byte stays: key order, spacing, one-line arrays, line
endings, the trailing newline or its absence, and text we could not write back
the same way (escapes, lone surrogates, numbers such as 1e400), since nothing
we do not change is decoded and encoded again.

Only the top level is walked: ``json.JSONDecoder.raw_decode`` tells where each
key and value ends (a nested value or a string is passed over whole, so nothing
inside it can pass for a member), and the whitespace, ``:`` and ``,`` between
them are scanned here, in one pass linear in the text's length.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slackonos_telemetry.config.jsonfile import dumps

__all__ = ["edit_object_text", "render_new"]

# JSON's own whitespace: the parser accepts no other between tokens.
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# The spans between tokens, one match each, since a large file can have millions of
# members. A group before "?" matches only when its whitespace holds a line break.
# ":" and the whitespace around it:
_SEPARATOR = re.compile(r"[ \t]*([\r\n][ \t\n\r]*)?:[ \t]*([\r\n][ \t\n\r]*)?")
# The whitespace after "{": up to its last line break (1), then the indentation (2).
_GAP = re.compile(r"([ \t\n\r]*[\r\n])?([ \t]*)")
# After a value: whitespace (1), the "," or "}" ending it (2), then as _GAP (3, 4).
_AFTER_VALUE = re.compile(r"[ \t]*([\r\n][ \t\n\r]*)?([,}])([ \t\n\r]*[\r\n])?([ \t]*)")
_DECODER = json.JSONDecoder()
# For a file with no member to copy from: the look json.dumps(indent=2) gives.
_DEFAULT_INDENT = "  "
_DEFAULT_SEPARATOR = ": "

# (start, end, replacement), in increasing order of start.
_Edit = tuple[int, int, str]


def render_new(data: Mapping[str, Any]) -> str:
    """A new file holding ``data``: one member a line, two-space indent, trailing newline,
    each value written as :func:`edit_object_text` writes it."""
    if not data:
        return "{}\n"
    lines = [
        _DEFAULT_INDENT + _member(key, dumps(value, indent=None), _DEFAULT_SEPARATOR)
        for key, value in data.items()
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def edit_object_text(text: str, changes: Mapping[str, Any]) -> str:
    """``text`` (one JSON object) with each key of ``changes`` set to its value: an existing
    member's value replaced in place, a missing key appended as the new last member.

    Empty or whitespace-only ``text`` (a missing or emptied file) gives
    :func:`render_new` of ``changes``. The caller has checked that ``text`` parses as
    one object; ValueError if it turns out not to.
    """
    # isspace(), not strip(): the same test jsonfile makes, without copying a large text.
    if not text or text.isspace():
        return render_new(changes)
    if not changes:
        return text
    values = {key: dumps(value, indent=None) for key, value in changes.items()}
    layout = _scan(text, values)
    edits = list(layout.replacements)
    missing = [key for key in values if key not in layout.found]
    if missing:
        edits.extend(_append(text, layout, [(key, values[key]) for key in missing]))
    return _apply(text, edits)


@dataclass(frozen=True)
class _Layout:
    """What a pass over the top level of the object learnt about its text."""

    open_end: int  # just after "{"
    close: int  # the "}"
    replacements: list[_Edit]
    found: set[str]
    # The last member: where the whitespace before its key starts (just after "{" or
    # ","), where its key starts, where its value ends. None: the object is empty.
    last: tuple[int, int, int] | None
    # The file's style, from the last member showing it.
    separator: str | None
    indent: str | None
    spans_lines: bool  # a line break between top-level tokens


def _scan(text: str, values: Mapping[str, str]) -> _Layout:
    at = _skip(text, 0)
    if not text.startswith("{", at):
        raise ValueError("the text does not hold a JSON object")
    open_end = gap_start = at + 1
    gap = _GAP.match(text, open_end)
    assert gap is not None  # matches the empty string
    at = gap.end()
    spans_lines = gap.start(1) >= 0
    if text.startswith("}", at):
        _check_end(text, at + 1)
        return _Layout(open_end, at, [], set(), None, None, None, spans_lines)
    replacements: list[_Edit] = []
    found: set[str] = set()
    separator: re.Match[str] | None = None
    indent = gap.group(2) if spans_lines else None
    # Bound once, and few calls a member: a large file can have millions of members.
    decode, separator_at, after_value_at = _DECODER.raw_decode, _SEPARATOR.match, _AFTER_VALUE.match
    while True:
        if not text.startswith('"', at):
            raise ValueError(f"expected a key at character {at}")
        # raw_decode reads the key as the stdlib does: "\u0074elemetryEnabled" is ours too.
        key, key_end = decode(text, at)
        colon = separator_at(text, key_end)
        if colon is None:
            raise ValueError(f"expected ':' at character {key_end}")
        value_start = colon.end()
        # Parses (and drops) the value only to learn where it ends: the C scanner is
        # linear, and no string or nesting scanner written here can drift from it.
        _, value_end = decode(text, value_start)
        after = after_value_at(text, value_end)
        if after is None:
            raise ValueError(f"expected ',' or '}}' at character {value_end}")
        if key in values:
            # Every occurrence, should a key the caller owns be given twice after all:
            # the last one is what a reader sees.
            found.add(key)
            replacements.append((value_start, value_end, values[key]))
        if colon.lastindex is None:  # no line break around the ":"
            separator = colon
        mark = after.start(2)
        if text[mark] == "}":
            spans_lines = spans_lines or after.start(1) >= 0
            break
        if after.start(3) >= 0:  # the next member starts a line
            indent = after.group(4)
            spans_lines = True
        elif not spans_lines:
            spans_lines = after.start(1) >= 0
        gap_start, at = mark + 1, after.end()
    _check_end(text, mark + 1)
    return _Layout(
        open_end,
        mark,
        replacements,
        found,
        (gap_start, at, value_end),
        None if separator is None else separator.group(),
        indent,
        spans_lines,
    )


def _append(text: str, layout: _Layout, members: list[tuple[str, str]]) -> list[_Edit]:
    """Edits adding ``members`` (key, value as JSON) after the object's last member."""
    separator = layout.separator if layout.separator is not None else _DEFAULT_SEPARATOR
    new = [_member(key, value, separator) for key, value in members]
    if not layout.spans_lines:
        if layout.last is None:
            # Before "}", followed by the same whitespace: `{ }` becomes `{ "k": true }`.
            inner = text[layout.open_end : layout.close]
            return [(layout.close, layout.close, ", ".join(new) + inner)]
        gap_start, key_start, value_end = layout.last
        gap = text[gap_start:key_start]
        if not gap and gap_start == layout.open_end and separator != ":":
            # `{"a": 1}` has no "," to copy the spacing after; its spaced ":" says a space.
            gap = " "
        return [(value_end, value_end, "".join("," + gap + m for m in new))]
    anchor = layout.open_end if layout.last is None else layout.last[2]
    edits: list[_Edit] = [] if layout.last is None else [(anchor, anchor, ",")]
    # At the end of the anchor's line: whatever follows the value there (trailing
    # spaces) stays on its line, and the "}" keeps its own line. With "}" on the
    # value's line, the new members go between them.
    at = _first_break(text, anchor, layout.close)
    if at >= 0:
        line_break = _break_at(text, at)
    else:
        # Any line break in the object tells the file's line ending: a string holds none
        # unescaped, so the first is one between tokens (there is one: it spans lines).
        at = anchor
        line_break = _break_at(text, _first_break(text, layout.open_end, layout.close))
    indent = layout.indent if layout.indent is not None else _DEFAULT_INDENT
    edits.append((at, at, ",".join(line_break + indent + m for m in new)))
    return edits


def _member(key: str, value: str, separator: str) -> str:
    return dumps(key, indent=None) + separator + value


def _apply(text: str, edits: list[_Edit]) -> str:
    pieces: list[str] = []
    done = 0
    for start, end, replacement in edits:
        pieces.append(text[done:start])
        pieces.append(replacement)
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def _skip(text: str, at: int) -> int:
    match = _WHITESPACE.match(text, at)
    assert match is not None  # a `*` pattern always matches
    return match.end()


def _check_end(text: str, at: int) -> None:
    if _skip(text, at) < len(text):
        raise ValueError(f"unexpected text after the object at character {at}")


def _first_break(text: str, start: int, end: int) -> int:
    """Where the first line break (\\n, \\r\\n or a lone \\r) in text[start:end] is, or -1."""
    newline = text.find("\n", start, end)
    # Bounded by the "\n" found, so that the two searches read the span once between them.
    carriage = text.find("\r", start, newline if newline >= 0 else end)
    return carriage if carriage >= 0 else newline


def _break_at(text: str, at: int) -> str:
    return "\r\n" if text.startswith("\r\n", at) else text[at]
