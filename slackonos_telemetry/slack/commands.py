"""Reading an admin's message as a telemetry command, whatever Slack formatting it carries."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

SETCONFIG_KEY = "telemetryenabled"
TELEMETRY_WORD = "telemetry"

_LEADING_MENTION = re.compile(r"^\s*<@([A-Z0-9]+)(?:\|[^>]*)?>[\s:,]*")
_CODE_FENCE = re.compile(r"```")
_WRAPPED = re.compile(r"(?<![\w*_])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*_])")
_LEADING_QUOTE = re.compile(r"^\s*>\s?")


class CommandKind(enum.Enum):
    SET_ENABLED = "setconfig telemetryEnabled"
    STATUS = "telemetry status"
    PREVIEW = "telemetry preview"
    RESET_ID = "telemetry reset-id"
    HELP = "telemetry help"


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    argument: str | None = None  # setconfig's value, as typed; an unknown subcommand

    @property
    def words(self) -> str:
        return self.kind.value


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
    """The telemetry command in ``text``, or None when the message is not one of ours
    (other ``setconfig`` keys belong to the host)."""
    words = strip_formatting(text, bot_user_id, mentioned).split(" ")
    head = [word.lower() for word in words[:2]]
    if head and head[0] == "setconfig":
        if len(head) < 2 or head[1] != SETCONFIG_KEY:
            return None
        value = " ".join(words[2:]).strip()
        return Command(CommandKind.SET_ENABLED, value or None)
    if not head or head[0] != TELEMETRY_WORD:
        return None
    if len(words) == 1 or head[1] == "status":
        return Command(CommandKind.STATUS)
    if head[1] == "preview":
        return Command(CommandKind.PREVIEW)
    if head[1] in ("reset-id", "resetid", "reset_id"):
        return Command(CommandKind.RESET_ID)
    return Command(CommandKind.HELP, words[1] if head[1] != "help" else None)
