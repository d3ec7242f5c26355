"""Values put into Slack messages, shown as text and never read as markup.

Whatever the user typed, and hosts, paths, keys and versions from the config or the
environment, may hold ``<!channel>``, ``<@U…>`` or ``<https://…|link>``: escaped here,
Slack shows them as typed instead of pinging everyone or rendering a link. Loaded only
when the plugin answers a command, off the path every request takes, so slack_sdk's
models are imported at the top.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

# Slack has no escape for a backtick inside a code span or block: a typed one would close
# it, and the rest of the value would be read as mrkdwn. MODIFIER LETTER GRAVE ACCENT looks
# nearly the same and still tells the reader a backtick was there; "'" would not.
_BACKTICK_LOOKALIKE = "\u02cb"
_FENCE = "```"
_EMPTY = "(empty)"


def escape(text: str) -> str:
    """``text`` as Slack will show it: ``&``, ``<`` and ``>`` as entities, the only three
    characters Slack asks to be escaped (``&`` first, or the other two's ``&`` would be
    escaped again)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """A one-line value as inline code. An empty value shows as ``(empty)``: a bare pair
    of backticks would show as two backticks."""
    if not text:
        return f"`{_EMPTY}`"
    return f"`{escape(text).replace('`', _BACKTICK_LOOKALIKE)}`"


def block(text: str) -> str:
    """A multi-line value as a code block. Only a run of three backticks would close the
    block, so only those are replaced; a single or double backtick shows as typed."""
    if not text:
        return f"{_FENCE}\n{_EMPTY}\n{_FENCE}"
    # Left to right, non-overlapping: what is left of any run is at most two backticks.
    body = escape(text).replace(_FENCE, _BACKTICK_LOOKALIKE * 3)
    # The newlines keep a backtick at either end of the value off the fences.
    return f"{_FENCE}\n{body}\n{_FENCE}"


def validate_blocks(blocks: list[dict[str, Any]]) -> None:
    """Raise ``SlackObjectFormationError`` unless every block is one slack_sdk builds,
    validates and gives back unchanged (it drops unknown fields with only a log line,
    which Slack's API would refuse)."""
    for index, given in enumerate(blocks):
        try:
            parsed = Block.parse(given)
            if parsed is None:
                raise SlackObjectFormationError(f"block {index}: not a known block: {given!r}")
            parsed.validate_json()
            rebuilt = parsed.to_dict()
        # slack_sdk's constructors fail on a missing or unknown field with these, not with
        # its own error; one error type lets a caller fall back to the text alone.
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise SlackObjectFormationError(f"block {index}: {exc!r}") from exc
        if rebuilt != given:
            raise SlackObjectFormationError(
                f"block {index}: slack_sdk changed it to {rebuilt!r}: {given!r}"
            )
