"""The config file keeps its look: ``edit_object_text`` changes only the lines a write must.

Every case is checked three ways: the result is exactly the text expected; it reads
back (stdlib, last key wins) as the old object updated with the changes; and, as a
user sees it in ``git diff``, no line is lost and only the changed members' lines and
the comma line differ (one-line files: only the span around the change differs).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.config.jsonfile import dumps
from slackonos_telemetry.config.jsontext import edit_object_text, render_new
from tests.support.files import diff

# SlackONOS's own example config: github.com/htilly/SlackONOS, config/config.json.example
SLACKONOS_EXAMPLE = Path(__file__).parent / "data" / "slackonos-config.json.example"

ON = "telemetryEnabled"
OWNED = (
    "telemetryEnabled",
    "telemetryApiKey",
    "telemetryHost",
    "telemetryInstanceId",
    "telemetryNoticeShown",
)


def read(text: str) -> Any:
    # NaN would not equal itself: compare the constants by name.
    return json.loads(text, parse_constant=lambda name: f"<{name}>")


def changed_middles(old: str, new: str) -> tuple[str, str]:
    """What differs between two texts once their common prefix and suffix are set aside."""
    limit = min(len(old), len(new))
    prefix = 0
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    limit -= prefix
    suffix = 0
    while suffix < limit and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    return old[prefix : len(old) - suffix], new[prefix : len(new) - suffix]


def assert_reads_back(text: str, changes: Mapping[str, Any], result: str) -> None:
    before = read(text) if text.strip() else {}
    assert read(result) == {**before, **json.loads(json.dumps(dict(changes)))}


def assert_lines_kept(text: str, changes: Mapping[str, Any], result: str) -> None:
    """For a file with one member a line: changed members' lines, one comma line, and one
    new line per new key; no line lost."""
    before = read(text)
    # Compared as JSON: in Python, True == 1.
    replaced = sum(
        1 for key, value in changes.items() if key in before and dumps(before[key]) != dumps(value)
    )
    new = sum(1 for key in changes if key not in before)
    removed, added = diff(text, result)
    assert len(added) == len(removed) + new, (removed, added)
    assert len(removed) <= replaced + (1 if new and before else 0), (removed, added)


def slackonos_example() -> str:
    # Bytes, not read_text(): that would turn any \r\n into \n.
    return SLACKONOS_EXAMPLE.read_bytes().decode("utf-8")


# --- SlackONOS's example, as its operator sees it in git ----------------------------------


def test_setting_a_new_key_adds_one_line_and_one_comma() -> None:
    text = slackonos_example()
    result = edit_object_text(text, {ON: False})
    assert diff(text, result) == (
        ['    "useLegacyBot": false\n'],
        ['    "useLegacyBot": false,\n', '    "telemetryEnabled": false\n'],
    )
    assert_reads_back(text, {ON: False}, result)


def test_changing_it_again_changes_only_its_line() -> None:
    first = edit_object_text(slackonos_example(), {ON: False})
    second = edit_object_text(first, {ON: True})
    assert diff(first, second) == (
        ['    "telemetryEnabled": false\n'],
        ['    "telemetryEnabled": true\n'],
    )
    assert edit_object_text(second, {ON: True}) == second


def test_setting_two_keys_adds_two_lines() -> None:
    text = slackonos_example()
    changes = {ON: True, "telemetryInstanceId": "0b6c5a0e-2f5d-4c4b-9d8e-3a1f2e7c9b10"}
    result = edit_object_text(text, changes)
    assert diff(text, result) == (
        ['    "useLegacyBot": false\n'],
        [
            '    "useLegacyBot": false,\n',
            '    "telemetryEnabled": true,\n',
            '    "telemetryInstanceId": "0b6c5a0e-2f5d-4c4b-9d8e-3a1f2e7c9b10"\n',
        ],
    )
    assert_reads_back(text, changes, result)


def test_a_new_line_copies_the_last_members_spacing_around_the_colon() -> None:
    text = slackonos_example().replace('"useLegacyBot": false', '"useLegacyBot" : false')
    result = edit_object_text(text, {ON: False})
    assert diff(text, result)[1] == [
        '    "useLegacyBot" : false,\n',
        '    "telemetryEnabled" : false\n',
    ]


# --- Hand-made files ----------------------------------------------------------------------

# Lines whose strings hold what a scanner could take for the end of a value or a key.
TRICKY = "".join(
    line + "\n"
    for line in [
        r'  "s": "quote \" backslash \\ brace } comma , \"telemetryEnabled\": true",',
        r'  "t": "\\",',
        r'  "u": "{\"telemetryEnabled\": true}",',
    ]
)
# Lines that a decode and encode again would not give back as they are.
NON_ASCII = "".join(
    line + "\n"
    for line in [
        '  "name": "Café 🎵 ünïcödé",',
        r'  "cut": "\ud83c",',
        r'  "pair": "\ud83c\udfb5 \u00e9 \u2028",',
        '  "raw": "line\u2028separator\x85next",',
        '  "big": 1e400,',
        '  "long": 123456789012345678901234567890,',
        '  "odd": [NaN, -Infinity, -0, 1E+2],',
    ]
)

MULTI_LINE_CASES = [
    pytest.param(
        '{\n\t"a": 1,\n\t"b": [1, 2]\n}\n',
        {ON: True},
        '{\n\t"a": 1,\n\t"b": [1, 2],\n\t"telemetryEnabled": true\n}\n',
        id="tabs",
    ),
    pytest.param(
        '{\r\n  "a" : "x",\r\n  "b" : 2\r\n}\r\n',
        {ON: True},
        '{\r\n  "a" : "x",\r\n  "b" : 2,\r\n  "telemetryEnabled" : true\r\n}\r\n',
        id="crlf-append",
    ),
    pytest.param(
        '{\r\n  "telemetryEnabled": true,\r\n  "b": 2\r\n}\r\n',
        {ON: False},
        '{\r\n  "telemetryEnabled": false,\r\n  "b": 2\r\n}\r\n',
        id="crlf-replace",
    ),
    pytest.param(
        '{\r  "a": 1\r}\r',
        {ON: True},
        '{\r  "a": 1,\r  "telemetryEnabled": true\r}\r',
        id="cr-only",
    ),
    pytest.param(
        '{\n  "a": 1\n}',
        {ON: True},
        '{\n  "a": 1,\n  "telemetryEnabled": true\n}',
        id="no-trailing-newline",
    ),
    pytest.param(
        '\n  {\n  "a": 1\n}\n\n\n',
        {ON: True},
        '\n  {\n  "a": 1,\n  "telemetryEnabled": true\n}\n\n\n',
        id="blank-lines-around",
    ),
    pytest.param("{\n}", {ON: True}, '{\n  "telemetryEnabled": true\n}', id="empty-on-two-lines"),
    pytest.param(
        "{\n}\n",
        {ON: True, "telemetryHost": "h"},
        '{\n  "telemetryEnabled": true,\n  "telemetryHost": "h"\n}\n',
        id="empty-two-keys",
    ),
    pytest.param(
        "{\r\n    }\r\n",
        {ON: True},
        '{\r\n  "telemetryEnabled": true\r\n    }\r\n',
        id="empty-brace-keeps-its-indent",
    ),
    pytest.param(
        '{\n  "a": 1,\n  "nested": {\n    "telemetryEnabled": true,\n'
        '    "deep": [1, {"x": "}"}]\n  }\n}\n',
        {ON: False},
        '{\n  "a": 1,\n  "nested": {\n    "telemetryEnabled": true,\n'
        '    "deep": [1, {"x": "}"}]\n  },\n  "telemetryEnabled": false\n}\n',
        id="nested-object-last",
    ),
    pytest.param(
        '{\n  "telemetryEnabled": true,\n  "nested": {\n    "telemetryEnabled": true\n'
        '  },\n  "z": 0\n}\n',
        {ON: False},
        '{\n  "telemetryEnabled": false,\n  "nested": {\n    "telemetryEnabled": true\n'
        '  },\n  "z": 0\n}\n',
        id="nested-object-keeps-its-own-key",
    ),
    pytest.param(
        "{\n" + TRICKY + '  "telemetryEnabled": true\n}\n',
        {ON: False},
        "{\n" + TRICKY + '  "telemetryEnabled": false\n}\n',
        id="tricky-strings-replace",
    ),
    pytest.param(
        "{\n" + TRICKY + '  "v": 1\n}\n',
        {ON: False},
        "{\n" + TRICKY + '  "v": 1,\n  "telemetryEnabled": false\n}\n',
        id="tricky-strings-append",
    ),
    pytest.param(
        '{\n  "a": 1,\n  "a": 2,\n  "b": 3\n}\n',
        {ON: True},
        '{\n  "a": 1,\n  "a": 2,\n  "b": 3,\n  "telemetryEnabled": true\n}\n',
        id="foreign-key-twice",
    ),
    pytest.param(
        '{\n  "a": 1,\n  "telemetryEnabled": true,\n  "a": 2\n}\n',
        {ON: False},
        '{\n  "a": 1,\n  "telemetryEnabled": false,\n  "a": 2\n}\n',
        id="foreign-key-twice-around-ours",
    ),
    pytest.param(
        "{\n" + NON_ASCII + '  "telemetryEnabled": true\n}\n',
        {ON: False, "telemetryHost": "é🎵\ud83c"},
        "{\n" + NON_ASCII + '  "telemetryEnabled": false,\n  "telemetryHost": "é🎵\\ud83c"\n}\n',
        id="non-ascii-and-lone-surrogates",
    ),
    pytest.param(
        '{\n  "telemetryEnabled": true,\n  "a": 1,\n  "b": 2\n}\n',
        {ON: False},
        '{\n  "telemetryEnabled": false,\n  "a": 1,\n  "b": 2\n}\n',
        id="ours-first",
    ),
    pytest.param(
        '{\n  "a": 1,\n  "telemetryEnabled": true,\n  "b": 2\n}\n',
        {ON: False},
        '{\n  "a": 1,\n  "telemetryEnabled": false,\n  "b": 2\n}\n',
        id="ours-middle",
    ),
    pytest.param(
        '{\n  "a": 1,\n  "b": 2,\n  "telemetryEnabled": true\n}\n',
        {ON: False},
        '{\n  "a": 1,\n  "b": 2,\n  "telemetryEnabled": false\n}\n',
        id="ours-last",
    ),
    pytest.param(
        '{\n  "telemetryApiKey": "k",\n  "a": 1\n}\n',
        {"telemetryApiKey": "k" * 80},
        '{\n  "telemetryApiKey": "' + "k" * 80 + '",\n  "a": 1\n}\n',
        id="longer",
    ),
    pytest.param(
        '{\n  "telemetryHost": "https://eu.i.posthog.com", "a": 1\n}\n',
        {"telemetryHost": ""},
        '{\n  "telemetryHost": "", "a": 1\n}\n',
        id="shorter",
    ),
    pytest.param(
        '{\n  "telemetryHost": null\n}\n',
        {"telemetryHost": {"a": [1, None], "b": "é"}},
        '{\n  "telemetryHost": {"a":[1,null],"b":"é"}\n}\n',
        id="any-json-value",
    ),
    pytest.param(
        '{\n  "\\u0074elemetryEnabled": true\n}\n',
        {ON: False},
        '{\n  "\\u0074elemetryEnabled": false\n}\n',
        id="escaped-key",
    ),
    pytest.param(
        '{\n  "a": 1   \n}\n',
        {ON: True},
        '{\n  "a": 1,   \n  "telemetryEnabled": true\n}\n',
        id="spaces-after-last-value",
    ),
    pytest.param(
        '{\n  "a": 1\n\n}\n',
        {ON: True},
        '{\n  "a": 1,\n  "telemetryEnabled": true\n\n}\n',
        id="blank-line-before-brace",
    ),
    pytest.param(
        '{\n  "a" : 1,\n  "b": 2\n}\n',
        {ON: True},
        '{\n  "a" : 1,\n  "b": 2,\n  "telemetryEnabled": true\n}\n',
        id="separators-disagree-last-wins",
    ),
    pytest.param(
        '{\n  "a": 1,\n  "b" : 2\n}\n',
        {ON: True},
        '{\n  "a": 1,\n  "b" : 2,\n  "telemetryEnabled" : true\n}\n',
        id="separators-disagree-last-wins-2",
    ),
    pytest.param(
        '{\n  "a"\n    : 1\n}\n',
        {ON: True},
        '{\n  "a"\n    : 1,\n  "telemetryEnabled": true\n}\n',
        id="separator-across-lines-not-copied",
    ),
    pytest.param(
        '{"a": 1,\n "b": 2\n}',
        {ON: True},
        '{"a": 1,\n "b": 2,\n "telemetryEnabled": true\n}',
        id="first-member-on-brace-line",
    ),
    pytest.param(
        '{"a": 1, "b": 2\n}',
        {ON: True},
        '{"a": 1, "b": 2,\n  "telemetryEnabled": true\n}',
        id="no-member-starts-a-line",
    ),
    pytest.param(
        '{\n    "telemetryEnabled": true,\n    "x": 1\n}\n',
        {ON: False, "telemetryInstanceId": "id", "telemetryNoticeShown": True},
        '{\n    "telemetryEnabled": false,\n    "x": 1,\n    "telemetryInstanceId": "id",\n'
        '    "telemetryNoticeShown": true\n}\n',
        id="replace-one-add-two",
    ),
]


@pytest.mark.parametrize(("text", "changes", "expected"), MULTI_LINE_CASES)
def test_hand_made_files(text: str, changes: dict[str, Any], expected: str) -> None:
    result = edit_object_text(text, changes)
    assert result == expected
    assert_reads_back(text, changes, result)
    assert_lines_kept(text, changes, result)


def test_closing_brace_on_the_last_members_line_stays_after_the_new_one() -> None:
    # The one case where the comma line also loses the "}": it had no line of its own.
    text = '{\n  "a": 1,\n  "b": 2}\n'
    result = edit_object_text(text, {ON: True})
    assert result == '{\n  "a": 1,\n  "b": 2,\n  "telemetryEnabled": true}\n'
    assert_reads_back(text, {ON: True}, result)
    assert_lines_kept(text, {ON: True}, result)


ONE_LINE_CASES = [
    pytest.param("{}", {ON: True}, '{"telemetryEnabled": true}', id="empty"),
    pytest.param(
        "{}\n\n",
        {ON: True, "telemetryHost": "h"},
        '{"telemetryEnabled": true, "telemetryHost": "h"}\n\n',
        id="empty-two-keys",
    ),
    pytest.param("{ }", {ON: True}, '{ "telemetryEnabled": true }', id="empty-padded"),
    pytest.param(
        '{"a":1,"b":[1,2]}', {ON: True}, '{"a":1,"b":[1,2],"telemetryEnabled":true}', id="minified"
    ),
    pytest.param(
        '{"a":1,"b":[1,2]}\n',
        {ON: True, "telemetryHost": "h"},
        '{"a":1,"b":[1,2],"telemetryEnabled":true,"telemetryHost":"h"}\n',
        id="minified-two-keys",
    ),
    pytest.param(
        '{"a": 1, "b": [1, 2]}\n',
        {ON: True},
        '{"a": 1, "b": [1, 2], "telemetryEnabled": true}\n',
        id="json-dumps-style",
    ),
    pytest.param('{"a": 1}', {ON: True}, '{"a": 1, "telemetryEnabled": true}', id="one-member"),
    pytest.param('{ "a" : 1 }', {ON: True}, '{ "a" : 1, "telemetryEnabled" : true }', id="padded"),
    pytest.param(
        '{"telemetryEnabled":true,"a":"\\"telemetryEnabled\\":true"}',
        {ON: False},
        '{"telemetryEnabled":false,"a":"\\"telemetryEnabled\\":true"}',
        id="minified-replace",
    ),
    pytest.param(
        '{"a":{"telemetryEnabled":true},"b":"é\\ud83c"}',
        {ON: False},
        '{"a":{"telemetryEnabled":true},"b":"é\\ud83c","telemetryEnabled":false}',
        id="minified-nested-key-is-not-ours",
    ),
]


@pytest.mark.parametrize(("text", "changes", "expected"), ONE_LINE_CASES)
def test_one_line_files(text: str, changes: dict[str, Any], expected: str) -> None:
    result = edit_object_text(text, changes)
    assert result == expected
    assert_reads_back(text, changes, result)
    old, new = changed_middles(text, result)
    if ON in read(text):
        # Only inside the value: "true" -> "false" differs in "tru" / "fals".
        assert old in "true" and new in dumps(changes[ON], indent=None)
    else:
        # Nothing removed: the new members (and their comma) are inserted, at one place.
        assert old == ""
        assert all(json.dumps(key) in new for key in changes)


@pytest.mark.parametrize("text", ["", "\n", "  \n\t\n", "\r\n"])
def test_an_empty_text_becomes_a_new_file(text: str) -> None:
    changes = {ON: True, "telemetryHost": "é\ud83c"}
    result = edit_object_text(text, changes)
    assert result == '{\n  "telemetryEnabled": true,\n  "telemetryHost": "é\\ud83c"\n}\n'
    assert result == render_new(changes)
    assert_reads_back(text, changes, result)


def test_render_new() -> None:
    assert render_new({}) == "{}\n"
    assert render_new({"a": [1, {"b": None}]}) == '{\n  "a": [1,{"b":null}]\n}\n'


@pytest.mark.parametrize(
    "text", [slackonos_example(), "{}", '{"a" :1}'], ids=["slackonos", "empty", "minified"]
)
def test_no_changes_keep_the_text(text: str) -> None:
    assert edit_object_text(text, {}) is text


@pytest.mark.parametrize("text", ["[]", '"x"', '{"a": 1} {}', '{"a" 1}', '{"a": 1,}', "{"])
def test_text_that_is_not_one_object_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        edit_object_text(text, {ON: True})


# --- Generated files ----------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    written_key: str  # as in the file, escapes and all
    key: str  # as the stdlib reads it
    indent: str
    separator: str
    value: str  # as in the file


@dataclass(frozen=True)
class Shape:
    one_line: bool
    lead: str  # before "{"
    opening: str  # between "{" and the first member's indentation
    gap: str  # one-line files: between "," and the next key
    line_break: str
    closing: str  # between the last value and "}"
    tail: str  # after "}"


def render(shape: Shape, members: list[Member]) -> str:
    joint = "," + (shape.gap if shape.one_line else shape.line_break)
    body = joint.join(m.indent + m.written_key + m.separator + m.value for m in members)
    return shape.lead + "{" + shape.opening + body + shape.closing + "}" + shape.tail


def expected_after(shape: Shape, members: list[Member], changes: Mapping[str, Any]) -> str:
    """The file as its own author would have written it with ``changes``: the oracle."""
    kept = [
        replace(m, value=dumps(changes[m.key], indent=None)) if m.key in changes else m
        for m in members
    ]
    last = members[-1]
    new = [
        Member(json.dumps(key), key, last.indent, last.separator, dumps(value, indent=None))
        for key, value in changes.items()
        if key not in {m.key for m in members}
    ]
    if shape.one_line and len(members) == 1:
        # No "," yet to copy the spacing after: the padding inside "{", or a space when the
        # file puts spaces around ":".
        shape = replace(shape, gap=shape.opening or (" " if last.separator != ":" else ""))
    return render(shape, kept + new)


# Values of other keys, as written in a file: each kept byte for byte.
SINGLE_LINE_VALUES = [
    *['"plain"', '"Café 🎵"', '""', r'"\\"', r'"tab\there"', '"sep\u2028\x85"'],
    *[r'"\u00e9"', r'"\ud83c"', r'"\udfb5\ud83c"'],  # escapes, lone surrogates included
    *[r'"quote \" backslash \\ brace } comma , colon :"', r'"\"telemetryEnabled\": true"'],
    *[r'"{\"telemetryEnabled\": true}"', '{"telemetryEnabled": true}'],
    *["12", "-0", "-0.0", "1E+2", "1e400", "123456789012345678901234567890"],
    *["NaN", "Infinity", "-Infinity", "true", "false", "null"],
    *["[]", "{}", "[1, 2, 3]", '["a","b"]', '{ "telemetryEnabled" : false , "x":[{}] }'],
]
MULTI_LINE_VALUES: list[Callable[[str, str], str]] = [
    lambda br, ind: f'[{br}{ind}{ind}1,{br}{ind}{ind}"two"{br}{ind}]',
    lambda br, ind: (
        f'{{{br}{ind}{ind}"telemetryEnabled": true,{br}'
        f'{ind}{ind}"nested": {{"a": [1, 2]}}{br}{ind}}}'
    ),
]
FOREIGN_KEYS = ["adminChannel", "gongLimit", "clé", "🎵", "a b", "", "x\ud83c"]
FOREIGN_KEYS += ["telemetry", "TelemetryEnabled", "telemetryEnabled "]  # not ours
OUR_OLD_VALUES = ["true", "false", '"abc"', '"é"', r'"\ud83c"', '""', "null", "1"]
OUR_NEW_VALUES: list[Any] = [
    *[True, False, "", "phc_0123456789abcdef", "https://eu.i.posthog.com"],
    *["é🎵", "\ud83c", 'quote " back \\', "0b6c5a0e-2f5d-4c4b-9d8e-3a1f2e7c9b10"],
    *[None, 0, [1, "a"], {"x": [True]}],  # not ours to write, but any JSON value works
]
SEPARATORS = [": ", ": ", ":", " : ", " :", ":\t", "\t:\t", ":  "]


def generated_case(rng: random.Random) -> tuple[Shape, list[Member], dict[str, Any]]:
    """A file's shape, its members (foreign ones, some given twice, and some of ours, at
    any place) and a change to 1 to 3 of our keys."""
    br = rng.choice(["\n", "\n", "\r\n", "\r"])
    if rng.random() < 0.3:
        shape = Shape(
            one_line=True,
            lead=rng.choice(["", " ", br]),
            opening=rng.choice(["", " "]),
            gap=rng.choice(["", " ", "  "]),
            line_break=br,
            closing=rng.choice(["", " "]),
            tail=rng.choice(["", br, br * 3, " "]),
        )
        indents = [""]
    else:
        shape = Shape(
            one_line=False,
            lead=rng.choice(["", " ", br]),
            opening=rng.choice([br, br + br, " " + br]),
            gap="",
            line_break=br,
            # "" puts the "}" on the last member's line.
            closing=rng.choice([br, br + br, br + "  ", br + br + "\t", ""]),
            tail=rng.choice(["", br, br * 3]),
        )
        indents = [rng.choice(["  ", "    ", "\t", " ", "", "\t\t"])]
        if rng.random() < 0.2:
            indents.append(rng.choice(["  ", "\t"]))
    separators = rng.sample(SEPARATORS, rng.choice([1, 1, 2]))

    def member(key: str, written_key: str, value: str) -> Member:
        return Member(written_key, key, rng.choice(indents), rng.choice(separators), value)

    members: list[Member] = []
    for _ in range(rng.randint(0, 7)):
        if members and rng.random() < 0.15:
            key = rng.choice(members).key  # a foreign key given twice
        else:
            key = rng.choice(FOREIGN_KEYS)
        if not shape.one_line and rng.random() < 0.15:
            value = rng.choice(MULTI_LINE_VALUES)(br, indents[0])
        else:
            value = rng.choice(SINGLE_LINE_VALUES)
        # Non-ASCII as it is, or as escapes; lone surrogates escaped either way (UTF-8 file).
        written = dumps(key, indent=None) if rng.random() < 0.5 else json.dumps(key)
        members.append(member(key, written, value))
    for key in rng.sample(OWNED, rng.randint(0 if members else 1, 3)):
        # Sometimes escaped: the stdlib reads "\u0074elemetryEnabled" as ours.
        written = json.dumps(key) if rng.random() < 0.9 else '"\\u0074' + key[1:] + '"'
        members.insert(
            rng.randint(0, len(members)), member(key, written, rng.choice(OUR_OLD_VALUES))
        )
    changes = {key: rng.choice(OUR_NEW_VALUES) for key in rng.sample(OWNED, rng.randint(1, 3))}
    return shape, members, changes


def test_generated_files() -> None:
    rng = random.Random(20240611)
    for case in range(400):
        shape, members, changes = generated_case(rng)
        text = render(shape, members)
        result = edit_object_text(text, changes)
        assert result == expected_after(shape, members, changes), (case, text, changes)
        assert_reads_back(text, changes, result)
        if not shape.one_line:
            assert_lines_kept(text, changes, result)
        assert edit_object_text(result, changes) == result, case


# --- Size -----------------------------------------------------------------------------------


def big_file(megabytes: int) -> str:
    """Half its members on one long line (as in a minified file: a search back to the line's
    start would cost the whole line each time), half one a line (as in an indented one)."""
    value = json.dumps("x" * 2000 + 'é"\\')  # ASCII only: half the memory of UCS-2 text
    count = megabytes * 1024 * 1024 // (len(value) + 12)
    minified = ", ".join(f'"k{i}": {value}' for i in range(count // 2))
    indented = ",\n".join(f'    "k{i}": {value}' for i in range(count // 2, count))
    return f'{{\n    {minified},\n{indented},\n    "telemetryHost": ""\n}}\n'


def test_time_grows_linearly_with_the_size() -> None:
    changes = {ON: True, "telemetryHost": "h"}
    texts = {5: big_file(5), 50: big_file(50)}
    best = dict.fromkeys(texts, float("inf"))
    # Interleaved, so that a busy moment of the machine slows both sizes alike.
    for _ in range(3):
        for megabytes, text in texts.items():
            started = time.perf_counter()
            result = edit_object_text(text, changes)
            best[megabytes] = min(best[megabytes], time.perf_counter() - started)
            assert result.endswith('    "telemetryHost": "h",\n    "telemetryEnabled": true\n}\n')
            assert len(result) - len(text) == len(',\n    "telemetryEnabled": true') + 1
    # 10 times the text: about 10 times the time if linear, about 100 if quadratic.
    assert best[50] / best[5] < 30, best
