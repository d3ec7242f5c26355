"""Reading an admin's message as a telemetry command (docs/CONTRACT.md, "Slack commands").

Slack formatting comes off first. Then the whole message must be one command
of the table: a message that only starts like one ("telemetry is down again?",
"setconfig telemetryEnabled false please") is the host's, untouched.

Every message any workspace member posts comes through here before the ack (on
the event loop, for an AsyncApp), so every step is linear in the message's length:
str methods, one split and one strip per word, no regex that can backtrack, and no
loop until a fixed point. A message far longer than any command is refused unread.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from slackonos_telemetry.config.keys import ENABLED_KEY
from slackonos_telemetry.slack.glance import MAX_COMMAND_LENGTH

# A mention is "<@USERID>" or "<@USERID|name>". Read with str methods, not a regex: a
# regex backtracks over an unclosed "<@AAAA…" one character at a time, slowly.
_USER_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
# One character class, nothing after it: never backtracks.
_AFTER_MENTION = re.compile(r"[\s:,]*")
# Bold and italic marks. Strikethrough (~) is not among the marks the contract removes
# (docs/CONTRACT.md, "Slack commands"): a struck-out command reads as "not this".
_EMPHASIS = "*_"


class CommandKind(enum.Enum):
    SET_ENABLED = "setconfig"
    STATUS = "status"
    PREVIEW = "preview"
    RESET_ID = "reset-id"
    HELP = "help"


@dataclass(frozen=True)
class CommandSpec:
    kind: CommandKind
    words: str  # as shown to a person
    forms: tuple[tuple[str, ...], ...]  # every word sequence that is this command
    help: str


SETCONFIG = ("setconfig", ENABLED_KEY.lower())
COMMAND_TABLE: tuple[CommandSpec, ...] = (
    CommandSpec(
        CommandKind.STATUS,
        "telemetry status",
        (("telemetry",), ("telemetry", "status")),
        "what is sent, where, and how to turn it off (with an on/off button)",
    ),
    CommandSpec(
        CommandKind.PREVIEW,
        "telemetry preview",
        (("telemetry", "preview"),),
        "the exact JSON the next heartbeat would send",
    ),
    CommandSpec(
        CommandKind.RESET_ID,
        "telemetry reset-id",
        (("telemetry", "reset-id"), ("telemetry", "resetid"), ("telemetry", "reset_id")),
        "a new anonymous instance ID; waiting events with the old one are discarded",
    ),
    CommandSpec(
        CommandKind.HELP,
        "telemetry help",
        (("telemetry", "help"),),
        "this list",
    ),
    CommandSpec(
        CommandKind.SET_ENABLED,
        f"setconfig {ENABLED_KEY}",
        (SETCONFIG,),
        "turn telemetry on or off (true/false, yes/no, on/off, 1/0); alone, shows the value",
    ),
)
_BY_FORM = {form: spec for spec in COMMAND_TABLE for form in spec.forms}


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    argument: str | None = None  # setconfig's value, as typed

    @property
    def spec(self) -> CommandSpec:
        return next(spec for spec in COMMAND_TABLE if spec.kind is self.kind)

    @property
    def words(self) -> str:
        return self.spec.words

    @property
    def changes_something(self) -> bool:
        """Run twice, it would do something twice (a retry must not); the others read."""
        return self.kind is CommandKind.RESET_ID or (
            self.kind is CommandKind.SET_ENABLED and self.argument is not None
        )


def help_text() -> str:
    lines = ["Telemetry commands (admin channel only):"]
    for spec in COMMAND_TABLE:
        shown = f"{spec.words} true|false" if spec.kind is CommandKind.SET_ENABLED else spec.words
        lines.append(f"• `{shown}`: {spec.help}")
    return "\n".join(lines)


def strip_formatting(text: str, bot_user_id: str | None = None, mentioned: bool = False) -> str:
    """The plain words of a message: no leading bot mention, code marks, bold,
    italics, leading quote or HTML entities."""
    return " ".join(_plain_words(text, bot_user_id, mentioned))


def parse_command(
    text: str, bot_user_id: str | None = None, mentioned: bool = False
) -> Command | None:
    """The telemetry command that ``text`` is, whole, or None (the message is the host's)."""
    if len(text) > MAX_COMMAND_LENGTH:
        return None  # host chat: its length costs nothing
    words = _plain_words(text, bot_user_id, mentioned)
    lowered = tuple(word.lower() for word in words)
    spec = _BY_FORM.get(lowered)
    if spec is not None:
        return Command(spec.kind)
    # setconfig telemetryEnabled VALUE: exactly one more word, judged by the command.
    if len(lowered) == 3 and lowered[:2] == SETCONFIG:
        return Command(CommandKind.SET_ENABLED, words[2])
    return None


def _plain_words(text: str, bot_user_id: str | None, mentioned: bool) -> list[str]:
    text = _without_leading_mention(text, bot_user_id, mentioned)
    # &amp; last, so a typed "&gt;" (sent as "&amp;gt;") stays "&gt;".
    text = text.replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")
    quoted = text.lstrip()
    if quoted.startswith(">"):
        text = quoted[1:]
    # A fence may touch a word ("```telemetry status```"): it parts words, a lone backtick
    # does not ("`tele`metry" is "telemetry").
    text = text.replace("```", " ").replace("`", "")
    # Bold and italic marks come off each word's ends, however nested or unbalanced
    # ("*_status_*", or "*setconfig" and "false*" of one bold phrase); marks inside a word
    # stay ("reset_id"). Marks alone wrap nothing (Slack shows "*" as typed): such a word
    # stays, so "telemetry *" is not "telemetry".
    return [word.strip(_EMPHASIS) or word for word in text.split()]


def _without_leading_mention(text: str, bot_user_id: str | None, mentioned: bool) -> str:
    """``text`` without a leading mention of the bot and the ":" or "," after it. In an
    app_mention, or before the bot's own ID is known, a leading mention is taken to be
    the bot's."""
    start = text.lstrip()
    close = start.find(">") if start.startswith("<@") else -1
    if close < 0:
        return text
    user = start[2:close].partition("|")[0]
    if not user or not _USER_ID_CHARS.issuperset(user):
        return text
    if not (mentioned or bot_user_id is None or user == bot_user_id):
        return text
    rest = start[close + 1 :]
    after = _AFTER_MENTION.match(rest)
    return rest[after.end() :] if after else rest
