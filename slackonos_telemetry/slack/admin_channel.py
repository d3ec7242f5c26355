"""Which channel is the admin channel: an ID as given, or a name looked up once."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from slackonos_telemetry.config.keys import ADMIN_CHANNEL_KEY, DEFAULT_ADMIN_CHANNEL
from slackonos_telemetry.config.store import ConfigReadError, ConfigStore

log = logging.getLogger(__name__)

_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{6,}$")
# A name not found is looked up again only after this long: a bot in the wrong
# workspace must not page through conversations.list on every message.
_MISS_RETRY_SECONDS = 60.0
_PAGE_SIZE = 200


def is_channel_id(value: str) -> bool:
    return bool(_CHANNEL_ID.match(value))


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
        if not isinstance(value, str) or not value.strip().lstrip("#"):
            return DEFAULT_ADMIN_CHANNEL
        return value.strip().lstrip("#")

    def mention(self) -> str:
        """How to name it in a Slack message."""
        configured = self.configured()
        if is_channel_id(configured):
            return f"<#{configured}>"
        known = self._ids_by_name.get(configured.lower())
        return f"<#{known}>" if known else f"#{configured}"

    def resolve(self, client: WebClient) -> str | None:
        """The admin channel's ID, or None when no channel has that name."""
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
            found = _find_by_name(client, name)
            if found:
                self._ids_by_name[name] = found
                self._misses.pop(name, None)
            else:
                self._misses[name] = time.monotonic()
            return found

    def is_admin_channel(self, channel_id: str | None, client: WebClient) -> bool:
        return bool(channel_id) and channel_id == self.resolve(client)


def _find_by_name(client: WebClient, name: str) -> str | None:
    cursor: str | None = None
    try:
        while True:
            page = client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=_PAGE_SIZE,
                cursor=cursor,
            )
            for channel in page.get("channels") or []:
                if str(channel.get("name", "")).lower() == name:
                    return str(channel["id"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
    except (SlackApiError, SlackClientError, OSError) as exc:
        log.warning("could not look up the admin channel #%s: %s", name, exc)
        return None
    log.warning("no channel named #%s is visible to the bot: admin commands are off", name)
    return None
