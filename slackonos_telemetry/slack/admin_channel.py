"""Which channel is the admin channel: an ID as given, or a name looked up when needed.

Slack channel names are lower case, so an ``adminChannel`` with an upper-case
letter (``C0123ABCD``, ``C111``) is an ID; anything else is a name (``#``
optional), looked up with ``conversations.list`` and remembered. A lookup that
fails is not an answer: an admin in the right channel is never told that they
are in the wrong one because Slack was down.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from slackonos_telemetry.config.keys import ADMIN_CHANNEL_KEY, DEFAULT_ADMIN_CHANNEL
from slackonos_telemetry.config.store import ConfigReadError, ConfigStore
from slackonos_telemetry.slack.mrkdwn import escape
from slackonos_telemetry.slack.port import SlackPort, SlackUnavailable

log = logging.getLogger(__name__)

# A name not found in a complete listing is looked up again only after this long: a
# burst of commands must not page through conversations.list each time, and an admin who
# has just created the channel must not be told for long that they are in the wrong one.
_MISS_RETRY_SECONDS = 5.0
_MAX_PAGES = 50
_LOOKS_LIKE_ID = re.compile(r"[A-Z0-9]{2,30}")


class Place(enum.Enum):
    ADMIN = "admin"
    ELSEWHERE = "elsewhere"
    UNKNOWN = "unknown"  # the lookup failed


@dataclass(frozen=True)
class Verdict:
    place: Place
    problem: str = ""


def is_channel_id(value: str) -> bool:
    return any(char.isupper() for char in value)


class AdminChannel:
    def __init__(self, config_path: Path) -> None:
        self._store = ConfigStore(config_path)
        self._ids_by_name: dict[str, str] = {}
        self._misses: dict[str, float] = {}
        self._guard = threading.Lock()

    def configured(self) -> str:
        """``adminChannel`` as set now (an ID, or a name without '#')."""
        try:
            value = self._store.read().get(ADMIN_CHANNEL_KEY)
        except ConfigReadError:
            value = None
        if not isinstance(value, str) or not value.strip().lstrip("#").strip():
            return DEFAULT_ADMIN_CHANNEL
        return value.strip().lstrip("#").strip()

    def mention(self) -> str:
        """How to name it in a Slack message (no lookup): a channel link for an ID that
        looks like one, else the name as text (escaped: the value is the operator's)."""
        configured = self.configured()
        if is_channel_id(configured):
            return (
                f"<#{configured}>" if _LOOKS_LIKE_ID.fullmatch(configured) else escape(configured)
            )
        known = self._ids_by_name.get(configured.lower())
        if known and _LOOKS_LIKE_ID.fullmatch(known):
            return f"<#{known}>"
        return f"#{escape(configured)}"

    def check(self, channel_id: str, slack: SlackPort) -> Verdict:
        """Whether ``channel_id`` is the admin channel; UNKNOWN when a lookup failed."""
        try:
            admin_id = self.resolve(slack)
        except SlackUnavailable as exc:
            return Verdict(Place.UNKNOWN, str(exc))
        return Verdict(Place.ADMIN if admin_id == channel_id else Place.ELSEWHERE)

    def resolve(self, slack: SlackPort) -> str | None:
        """The admin channel's ID; None when no channel visible to the bot has that name.
        Raises SlackUnavailable when the lookup failed (nothing is remembered then)."""
        configured = self.configured()
        if is_channel_id(configured):
            return configured
        name = configured.lower()
        with self._guard:
            if name in self._ids_by_name:
                return self._ids_by_name[name]
            missed_at = self._misses.get(name)
            if missed_at is not None and time.monotonic() - missed_at < _MISS_RETRY_SECONDS:
                return None
            found = _find_by_name(slack, name)
            if found:
                self._ids_by_name[name] = found
                self._misses.pop(name, None)
            else:
                self._misses[name] = time.monotonic()
                log.warning(
                    "no channel named #%s is visible to the bot: admin commands are off", name
                )
            return found


def _find_by_name(slack: SlackPort, name: str) -> str | None:
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        channels, cursor = slack.list_channels(cursor)
        for channel in channels:
            channel_id = channel.get("id")
            if str(channel.get("name", "")).lower() == name and isinstance(channel_id, str):
                return channel_id
        if not cursor:
            return None
    raise SlackUnavailable(f"more than {_MAX_PAGES} pages of channels")
