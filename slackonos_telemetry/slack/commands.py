"""Reading an admin's message as a telemetry command (SPEC section 6).

Slack formatting comes off first. Then the whole message must be one command
of the table: a message that only starts like one ("telemetry is down again?",
"setconfig telemetryEnabled false please") is the host's, untouched.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from slackonos_telemetry.config.keys import ENABLED_KEY

_LEADING_MENTION = re.compile(r"^\s*<@([A-Z0-9]+)(?:\|[^>]*)?>[\s:,]*")
_CODE_FENCE = re.compile(r"```")
_WRAPPED = re.compile(r"(?<![\w*_])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*_])")
_LEADING_QUOTE = re.compile(r"^\s*>\s?")


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


def help_text() -> str:
    lines = ["Telemetry commands (admin channel only):"]
    for spec in COMMAND_TABLE:
        shown = f"{spec.words} true|false" if spec.kind is CommandKind.SET_ENABLED else spec.words
        lines.append(f"• `{shown}`: {spec.help}")
    return "\n".join(lines)


def strip_formatting(text: str, bot_user_id: str | None = None, mentioned: bool = False) -> str:
    """The plain words of a message: no leading bot mention, code marks, bold,
    italics, leading quote or HTML entities."""
    mention = _LEADING_MENTION.match(text)
    if mention and (mentioned or bot_user_id is None or mention.group(1) == bot_user_id):
        text = text[mention.end() :]
    # &amp; last, so a typed "&gt;" (sent as "&amp;gt;") stays "&gt;".
    text = text.replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")
    text = _LEADING_QUOTE.sub("", text, count=1)
    text = _CODE_FENCE.sub(" ", text).replace("`", "")
    previous = None
    while previous != text:  # *_nested_* marks come off layer by layer
        previous, text = text, _WRAPPED.sub(r"\2", text)
    return " ".join(text.split())


def parse_command(
    text: str, bot_user_id: str | None = None, mentioned: bool = False
) -> Command | None:
    """The telemetry command that ``text`` is, whole, or None (the message is the host's)."""
    words = strip_formatting(text, bot_user_id, mentioned).split()
    lowered = tuple(word.lower() for word in words)
    spec = _BY_FORM.get(lowered)
    if spec is not None:
        return Command(spec.kind)
    # setconfig telemetryEnabled VALUE: exactly one more word, judged by the command.
    if len(lowered) == 3 and lowered[:2] == SETCONFIG:
        return Command(CommandKind.SET_ENABLED, words[2])
    return None
