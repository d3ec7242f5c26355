"""Slack text as units (docs/CONTRACT.md, "Slack commands"): formatting comes off a command in
time linear in the message's length, whatever its shape, and every value put into a
Slack message is escaped for mrkdwn."""

from __future__ import annotations

import itertools
import math
import random
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from slack_sdk.errors import SlackObjectFormationError

from slackonos_telemetry.slack import mrkdwn
from slackonos_telemetry.slack.commands import (
    COMMAND_TABLE,
    Command,
    CommandKind,
    parse_command,
    strip_formatting,
)
from slackonos_telemetry.slack.glance import MAX_COMMAND_LENGTH, might_be_ours
from tests.support.slack_requests import HOST_CHAT

BOT = "U0BOT0001"

# -- formatting comes off, the command is understood ------------------------------------------

SAVING_VARIANTS = {  # as in test_slack_formatting.py, with the value each one carries
    "plain": ("setconfig telemetryEnabled false", "false"),
    "bot-mention": (f"<@{BOT}> setconfig telemetryEnabled false", "false"),
    "backticks": ("`setconfig telemetryEnabled false`", "false"),
    "inline-fence": ("```setconfig telemetryEnabled false```", "false"),
    "block-fence": ("```\nsetconfig telemetryEnabled false\n```", "false"),
    "bold": ("*setconfig telemetryEnabled false*", "false"),
    "italic": ("_setconfig telemetryEnabled false_", "false"),
    "quote": ("&gt; setconfig telemetryEnabled false", "false"),
    "mixed-case": ("SETCONFIG TELEMETRYENABLED OFF", "OFF"),
    "word-by-word": ("*setconfig* _telemetryEnabled_ `no`", "no"),
    "quoted-bold-code": ("&gt; *`setconfig telemetryEnabled 0`*", "0"),
    "nested": ("*_setconfig telemetryEnabled yes_*", "yes"),
    "tabs-and-newlines": ("setconfig\ttelemetryEnabled\n\non", "on"),
}


@pytest.mark.parametrize("mentioned", [False, True])
@pytest.mark.parametrize("variant", list(SAVING_VARIANTS))
def test_formatted_setconfig_is_understood(variant: str, mentioned: bool) -> None:
    text, value = SAVING_VARIANTS[variant]
    if mentioned and not text.startswith("<@"):
        text = f"<@{BOT}> {text}"  # an app_mention's text starts with the mention

    assert parse_command(text, BOT, mentioned) == Command(CommandKind.SET_ENABLED, value)


STATUS_TEXTS = [
    "telemetry",
    "telemetry status",
    "Telemetry STATUS",
    "`telemetry`",
    "*Telemetry Status*",
    "&gt; _telemetry status_",
    "> telemetry status",
    "  &gt;   telemetry status  ",
    "```telemetry```",
    "```telemetry status```",
    "```\ntelemetry status\n```",
    "*_telemetry status_*",
    "_*telemetry*_ *_status_*",
    "`tele`metry status",  # backticks come off anywhere, as before
    f"<@{BOT}> telemetry status",
    f"<@{BOT}>: telemetry status",
    f"<@{BOT}>, telemetry status",
    f"<@{BOT}|slackonos>: telemetry status",
    f"  <@{BOT}|slackonos> ,: telemetry",
    f"<@{BOT}> &gt; *`telemetry status`*",
    # Nested marks of any depth, as long as the message is within the length cap.
    "*_" * 200 + "telemetry status" + "_*" * 200,
]


@pytest.mark.parametrize("text", STATUS_TEXTS)
def test_formatted_status_is_understood(text: str) -> None:
    assert parse_command(text, BOT) == Command(CommandKind.STATUS)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("telemetry reset-id", CommandKind.RESET_ID),
        ("telemetry resetid", CommandKind.RESET_ID),
        ("telemetry reset_id", CommandKind.RESET_ID),
        ("Telemetry RESET_ID", CommandKind.RESET_ID),
        ("*telemetry reset_id*", CommandKind.RESET_ID),
        ("_telemetry reset_id_", CommandKind.RESET_ID),
        ("telemetry `reset_id`", CommandKind.RESET_ID),
        ("telemetry preview", CommandKind.PREVIEW),
        ("*telemetry preview*", CommandKind.PREVIEW),
        ("telemetry help", CommandKind.HELP),
        ("_telemetry help_", CommandKind.HELP),
    ],
)
def test_every_command_of_the_table_is_understood_formatted(text: str, kind: CommandKind) -> None:
    assert parse_command(text, BOT) == Command(kind)


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("&gt; *`setconfig telemetryEnabled 0`*", "setconfig telemetryEnabled 0"),
        ("telemetry reset_id", "telemetry reset_id"),
        ("telemetry re*set_id", "telemetry re*set_id"),  # marks inside a word stay
        ("*_status_*", "status"),
        ("telemetry *", "telemetry *"),  # marks alone wrap nothing
        ("* telemetry status *", "* telemetry status *"),
        ("~telemetry status~", "~telemetry status~"),  # strikethrough is not removed
        ("&lt;maybe&gt;&amp;more", "<maybe>&more"),
        ("&amp;gt;", "&gt;"),  # a typed "&gt;", sent as "&amp;gt;", stays "&gt;"
        ("&amp;lt;x&amp;gt;", "&lt;x&gt;"),
        ("", ""),
        ("   \n\t ", ""),
    ],
)
def test_strip_formatting(text: str, plain: str) -> None:
    assert strip_formatting(text, BOT) == plain


def test_entities_are_decoded_before_parsing() -> None:
    assert parse_command("setconfig telemetryEnabled &lt;maybe&gt;&amp;more", BOT) == Command(
        CommandKind.SET_ENABLED, "<maybe>&more"
    )
    assert parse_command("setconfig telemetryEnabled &amp;gt;", BOT) == Command(
        CommandKind.SET_ENABLED, "&gt;"
    )


def test_only_the_bots_own_leading_mention_comes_off() -> None:
    other = "<@U0OTHER01> telemetry status"

    assert parse_command(other, BOT) is None, "a mention of someone else is the host's"
    assert parse_command(other, BOT, mentioned=True) == Command(CommandKind.STATUS)
    assert parse_command(other, None) == Command(CommandKind.STATUS)  # bot id not known yet
    assert parse_command(f"telemetry status <@{BOT}>", BOT) is None, "only a leading mention"


NOT_COMMANDS = [
    *HOST_CHAT,
    "*telemetry status* please",
    "setconfig gongLimit 5",
    "setconfig telemetryEnabled",  # the control below: this one is a command
]


@pytest.mark.parametrize("text", NOT_COMMANDS[:-1])
def test_chat_that_only_starts_like_a_command_is_not_one(text: str) -> None:
    assert parse_command(text, BOT) is None
    assert parse_command(f"<@{BOT}> {text}", BOT, mentioned=True) is None


def test_the_whole_command_is_one() -> None:
    assert parse_command(NOT_COMMANDS[-1], BOT) == Command(CommandKind.SET_ENABLED)
    assert parse_command(f"<@{BOT}> telemetry is broken again?", BOT, mentioned=True) is None


def test_a_message_beyond_any_command_is_the_hosts() -> None:
    padded = "telemetry status" + " " * MAX_COMMAND_LENGTH

    assert parse_command(padded, BOT) is None
    assert not might_be_ours(_message_body(padded))
    assert might_be_ours(_message_body("Telemetry status"))


# -- the same commands as the old parser, on every well-formed message ----------------------
#
# The parser before the linear rewrite (its fixed-point regex loop was quadratic), kept as
# the reference: every message it understood, the new one understands the same way, and
# host chat stays the host's. The new one also takes off marks the old one left alone:
# unbalanced ones ("telemetry status_"), ones spanning lines, deep nests of the same mark.

_OLD_MENTION = re.compile(r"^\s*<@([A-Z0-9]+)(?:\|[^>]*)?>[\s:,]*")
_OLD_WRAPPED = re.compile(r"(?<![\w*_])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*_])")
_OLD_QUOTE = re.compile(r"^\s*>\s?")


def _old_without_mention(text: str, bot_user_id: str | None, mentioned: bool) -> str:
    mention = _OLD_MENTION.match(text)
    if mention and (mentioned or bot_user_id is None or mention.group(1) == bot_user_id):
        text = text[mention.end() :]
    return text


def _old_strip_formatting(text: str, bot_user_id: str | None, mentioned: bool) -> str:
    text = _old_without_mention(text, bot_user_id, mentioned)
    text = text.replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")
    text = _OLD_QUOTE.sub("", text, count=1)
    text = text.replace("```", " ").replace("`", "")
    previous = None
    while previous != text:
        previous, text = text, _OLD_WRAPPED.sub(r"\2", text)
    return " ".join(text.split())


def _old_parse_command(text: str, bot_user_id: str | None, mentioned: bool) -> Command | None:
    words = _old_strip_formatting(text, bot_user_id, mentioned).split()
    lowered = tuple(word.lower() for word in words)
    spec = next((spec for spec in COMMAND_TABLE if lowered in spec.forms), None)
    if spec is not None:
        return Command(spec.kind)
    if len(lowered) == 3 and lowered[:2] == ("setconfig", "telemetryenabled"):
        return Command(CommandKind.SET_ENABLED, words[2])
    return None


MENTION_PREFIXES = [
    "".join(parts)
    for parts in itertools.product(
        ["", " ", "\n "],
        ["<@", "<", "@"],
        [BOT, "U0OTHER01", "", "u0bot0001", f"{BOT}|slackonos", f"{BOT}|", "U1|a|b", "U1 "],
        [">", "", ">>"],
        ["", ":", ", ", " :, ", ",,"],
    )
]


@pytest.mark.parametrize("rest", ["telemetry status", "> x", "", "<@U2> y"])
def test_the_leading_mention_comes_off_as_before(rest: str) -> None:
    for prefix in MENTION_PREFIXES:
        text = prefix + rest
        for bot_user_id, mentioned in itertools.product([BOT, None], [False, True]):
            # "never" is no user ID: the second call takes no mention off.
            expected = strip_formatting(_old_without_mention(text, bot_user_id, mentioned), "never")
            assert strip_formatting(text, bot_user_id, mentioned) == expected, text


_PHRASES = [
    *(form for spec in COMMAND_TABLE for form in spec.forms),
    *(("setconfig", "telemetryEnabled", value) for value in ["false", "On", "1", "&lt;x&gt;"]),
    ("setconfig", "telemetryEnabled", "maybe", "later"),
    ("telemetry", "status", "please"),
    ("telemetry", "is", "down"),
    ("setconfig", "gongLimit", "5"),
    ("hello", "telemetry"),
]
_MARKS = ["*", "_", "*_", "_*", "**"]


def _well_formed(rng: random.Random) -> tuple[str, str]:
    """A phrase in random case with properly nested marks around words and spans, and the
    same message without marks."""
    phrase = [rng.choice([word, word.upper(), word.title()]) for word in rng.choice(_PHRASES)]
    words = list(phrase)
    for index in range(len(words)):
        for _ in range(rng.choice([0, 0, 1, 2])):
            mark = rng.choice(_MARKS)
            words[index] = mark + words[index] + mark[::-1]
        if rng.random() < 0.25:  # code around a word (three nested backticks are a fence)
            words[index] = f"`{words[index]}`"
    # Spans that grow each time, so that each contains the ones before it.
    first = last = rng.randrange(len(words))
    for _ in range(rng.choice([0, 1, 2, 3])):
        first, last = rng.randint(0, first), rng.randint(last, len(words) - 1)
        mark = rng.choice(_MARKS)
        words[first] = mark + words[first]
        words[last] = words[last] + mark[::-1]
    text = "".join(word + rng.choice([" ", "  ", "\t", "\n"]) for word in words).rstrip()
    code = rng.choice(["", "", "`"])
    prefix = rng.choice(["", "", f"<@{BOT}> ", f"<@{BOT}|bot>: ", "<@U0OTHER01> "])
    quote = rng.choice(["", "", "&gt; ", "&gt;"])
    fence = rng.choice(["", "", "```", "```\n"])
    formatted = prefix + quote + fence + code + text + code + fence[::-1]
    return formatted, prefix + quote + " ".join(phrase)


def test_every_well_formed_message_parses_as_without_its_marks() -> None:
    """Formatting never changes what a message is: a command stays that command, host chat
    stays the host's. The old parser agreed, or missed a command under deep or multi-line
    marks (its regex stopped at a newline and paired same marks wrongly), never more."""
    rng = random.Random(20240601)
    for _ in range(600):
        text, unformatted = _well_formed(rng)
        for bot_user_id, mentioned in itertools.product([BOT, None], [False, True]):
            expected = _old_parse_command(unformatted, bot_user_id, mentioned)
            assert parse_command(text, bot_user_id, mentioned) == expected, text
            assert _old_parse_command(text, bot_user_id, mentioned) in (expected, None), text


# -- hostile shapes: every parse is linear in the message's length ----------------------------

HOSTILE: dict[str, Callable[[int], str]] = {
    "telemetry-then-stars": lambda n: "telemetry " + "*" * (n - 10),
    "stars": lambda n: "*" * n,
    "underscore-star": lambda n: "_*" * (n // 2),
    "backticks": lambda n: "`" * n,
    "fences": lambda n: "```" * (n // 3),
    "amp-entities": lambda n: "&amp;" * (n // 5),
    "gt-entities": lambda n: "&gt;" * (n // 4),
    "mentions": lambda n: "<@U1>" * (n // 5),
    "mention-never-closed": lambda n: "<@U" + "A" * (n - 3),
    "mention-name-never-closed": lambda n: "<@U1|" + "x" * (n - 5),
    "status-then-words": lambda n: "telemetry status " + "x " * ((n - 17) // 2),
    "nested-emphasis": lambda n: "*_" * (n // 4) + "status" + "_*" * (n // 4),
    "spaces": lambda n: " " * n,
    "newlines": lambda n: "\n" * n,
    "one-word": lambda n: "w" * n,
    "non-ascii": lambda n: "Σé" * (n // 2),
}
SLACK_MAX = 40_000
SMALL = 4_000


def _message_body(text: str) -> dict[str, Any]:
    return {"type": "event_callback", "event": {"type": "message", "text": text}}


PARSERS: dict[str, Callable[[str], object]] = {
    "strip_formatting": lambda text: strip_formatting(text, BOT),
    "parse_command": lambda text: parse_command(text, BOT),
    "might_be_ours": lambda text: might_be_ours(_message_body(text)),
}


def _best_of_5(parse: Callable[[str], object], text: str) -> float:
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        parse(text)
        best = min(best, time.perf_counter() - start)
    return best


# Linear is a ratio of ~10 between 40,000 and 4,000 characters, the old fixed-point loop ~100.
# No absolute times: the suite runs on loaded CI machines. Below the floor, timer noise is
# all there is to compare; the smaller time is floored too, so that a few microseconds
# growing to a few hundred is still caught.
MAX_RATIO = 25
FLOOR_SECONDS = 0.000_2
SMALL_FLOOR_SECONDS = 0.000_01


@pytest.mark.parametrize("shape", list(HOSTILE))
def test_every_parse_is_linear_in_the_message_length(shape: str) -> None:
    small, large = HOSTILE[shape](SMALL), HOSTILE[shape](SLACK_MAX)
    assert SLACK_MAX - 10 <= len(large) <= SLACK_MAX + 10

    for name, parse in PARSERS.items():
        small_time, large_time = _best_of_5(parse, small), _best_of_5(parse, large)

        if large_time < FLOOR_SECONDS and small_time < FLOOR_SECONDS:
            continue
        ratio = large_time / max(small_time, SMALL_FLOOR_SECONDS)
        assert ratio < MAX_RATIO, (
            f"{name}: {small_time * 1e3:.3f} ms for {len(small)} characters, "
            f"{large_time * 1e3:.3f} ms for {len(large)}"
        )


@pytest.mark.parametrize("shape", list(HOSTILE))
def test_a_hostile_message_is_the_hosts(shape: str) -> None:
    text = HOSTILE[shape](SLACK_MAX)

    assert parse_command(text, BOT) is None
    assert parse_command(text, BOT, mentioned=True) is None
    assert not might_be_ours(_message_body(text))


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("telemetry " + "*" * 39_990, "telemetry " + "*" * 39_990),
        ("*" * SLACK_MAX, "*" * SLACK_MAX),
        ("`" * SLACK_MAX, ""),
        ("&amp;" * 8_000, "&" * 8_000),
        ("*_" * 10_000 + "status" + "_*" * 10_000, "status"),
        ("telemetry status " + "x " * 19_990, "telemetry status" + " x" * 19_990),
        (" " * SLACK_MAX, ""),
        ("\n" * SLACK_MAX, ""),
    ],
    ids=["telemetry-stars", "stars", "backticks", "amp", "nested", "words", "spaces", "newlines"],
)
def test_hostile_shapes_strip_as_short_ones_do(text: str, plain: str) -> None:
    assert strip_formatting(text, BOT) == plain


# -- values put into Slack messages -----------------------------------------------------------

HOSTILE_VALUES = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C123>",
    "<https://evil.example|click>",
    "&lt;x&gt;",
    "&amp;",
    "a & b < c > d",
    "`",
    "x`y",
    "``",
    "```",
    "````",
    "```<!channel>```",
    "*bold* _italic_ ~strike~",
    "line one\nline two",
    "<!channel>" * 500,  # 5,000 characters
]


def unescape(text: str) -> str:
    """What Slack shows for mrkdwn text, as far as escaping goes (&amp; last, as Slack)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _is_inert(escaped: str) -> bool:
    """No markup can start: no angle bracket, and every & begins one of the three entities."""
    return (
        "<" not in escaped and ">" not in escaped and not re.search(r"&(?!amp;|lt;|gt;)", escaped)
    )


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<!here>", "&lt;!here&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<https://evil.example|click>", "&lt;https://evil.example|click&gt;"),
        ("&lt;x&gt;", "&amp;lt;x&amp;gt;"),
        ("a & b", "a &amp; b"),
        ("plain text", "plain text"),
        ("", ""),
    ],
)
def test_escape(value: str, escaped: str) -> None:
    assert mrkdwn.escape(value) == escaped


def test_escaped_values_show_as_typed() -> None:
    for value in HOSTILE_VALUES:
        escaped = mrkdwn.escape(value)

        assert _is_inert(escaped), value
        assert unescape(escaped) == value


LOOKALIKE = "\u02cb"


def test_code_is_one_inert_span() -> None:
    for value in HOSTILE_VALUES:
        shown = mrkdwn.code(value)

        assert shown.startswith("`") and shown.endswith("`") and len(shown) > 2, value
        inner = shown[1:-1]
        assert "`" not in inner, f"a backtick would end the span early: {value!r}"
        assert _is_inert(inner), value
        assert unescape(inner).replace(LOOKALIKE, "`") == value


def test_empty_values_are_visible() -> None:
    assert mrkdwn.code("") == "`(empty)`"
    assert mrkdwn.block("") == "```\n(empty)\n```"


def test_block_is_one_inert_code_block() -> None:
    for value in [*HOSTILE_VALUES, "`" * 7, "a``b", '{\n  "k": "<v>"\n}']:
        shown = mrkdwn.block(value)

        assert shown.startswith("```\n") and shown.endswith("\n```"), value
        inner = shown[4:-4]
        assert "```" not in inner, f"three backticks would end the block early: {value!r}"
        assert _is_inert(inner), value
        assert unescape(inner).replace(LOOKALIKE * 3, "```") == value


def test_single_backticks_in_a_block_stay_backticks() -> None:
    assert mrkdwn.block("a`b``c") == "```\na`b``c\n```"


def _message_blocks(value: str) -> list[dict[str, Any]]:
    # Shortened before escaping, never after: a cut could leave half an entity ("&am").
    shown = mrkdwn.code(value[:500])
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Telemetry is on"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"Value: {shown}"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*Host*\n{shown}"}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn.escape(value[:500])}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn.block(value[:500])}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "slackonos_telemetry_toggle",
                    "text": {"type": "plain_text", "text": "Turn telemetry off"},
                    "value": "off",
                    "style": "danger",
                }
            ],
        },
    ]


def _mrkdwn_texts(node: object) -> list[str]:
    if isinstance(node, list):
        return [text for item in node for text in _mrkdwn_texts(item)]
    if not isinstance(node, dict):
        return []
    own = [node["text"]] if node.get("type") == "mrkdwn" else []
    return own + [text for value in node.values() for text in _mrkdwn_texts(value)]


def test_blocks_holding_hostile_values_validate() -> None:
    for value in HOSTILE_VALUES:
        blocks = _message_blocks(value)

        mrkdwn.validate_blocks(blocks)
        texts = _mrkdwn_texts(blocks)
        assert len(texts) == 4 and all(_is_inert(text) for text in texts), texts


def test_a_long_value_must_be_shortened_to_fit_a_block() -> None:
    long = "<!channel>" * 500  # 5,000 characters, 7,000 escaped
    section = {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn.code(long)}}

    with pytest.raises(SlackObjectFormationError):
        mrkdwn.validate_blocks([section])


@pytest.mark.parametrize(
    "blocks",
    [
        [{"type": "no-such-block"}],
        [{"text": {"type": "mrkdwn", "text": "no type"}}],
        [{"type": "section"}],
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
        [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}],
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "colour": "red"}],
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x", "colour": "red"}}],
        [{"type": "divider"}, {"type": "actions", "elements": []}],
        [{"type": "header", "text": {"text": "no type"}}],
        [{"type": "actions", "elements": [{"type": "button"}]}],
        ["section"],
    ],
    ids=[
        "unknown-type",
        "no-type",
        "no-text",
        "text-too-long",
        "header-too-long",
        "unknown-field",
        "unknown-text-field",
        "empty-actions",
        "text-without-type",
        "button-without-text",
        "not-a-dict",
    ],
)
def test_invalid_blocks_are_refused(blocks: list[Any]) -> None:
    with pytest.raises(SlackObjectFormationError):
        mrkdwn.validate_blocks(blocks)
