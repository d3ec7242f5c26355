"""A small host bot, standing in for SlackONOS: its own commands, then the plugins.

It adds a catch-all ``message`` listener *before* loading plugins, as a real bot
might, which is the order that most needs the plugin's middleware design.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from slack_bolt import App, Say

from slackonos_telemetry.config.store import ConfigReadError, ConfigStore, ConfigWriteError
from slackonos_telemetry.plugins import load_plugins
from slackonos_telemetry.slack.commands import help_text

log = logging.getLogger(__name__)

HOST_HELP = (
    "Host commands:\n"
    "• `help`: this list\n"
    "• `setconfig <key> <value>`: one of the bot's own settings, such as `setconfig gongLimit 5`\n"
    + help_text()
)
_SETCONFIG = re.compile(r"^\s*setconfig\s+(\S+)\s+(.+?)\s*$", re.IGNORECASE)


def add_host_listeners(app: App, config_path: Path, *, chatty: bool = False) -> None:
    """``chatty``: answer every unknown message (the console); in a workspace the
    catch-all stays silent, so the bot does not reply to every chat."""
    store = ConfigStore(config_path)

    @app.message(re.compile(r"^\s*help\s*$", re.IGNORECASE))
    def show_help(say: Say, event: dict[str, Any]) -> None:
        say(text=HOST_HELP, thread_ts=event.get("thread_ts"))

    @app.message(_SETCONFIG)
    def set_host_setting(say: Say, event: dict[str, Any]) -> None:
        match = _SETCONFIG.match(str(event.get("text") or ""))
        if match is None:
            return
        key, value = match.group(1), match.group(2)
        if key.lower().startswith("telemetry"):
            say(
                text=f"`{key}` is the telemetry plugin's: see `telemetry help`.",
                thread_ts=event.get("thread_ts"),
            )
            return
        try:
            store.update({key: _typed(value)})
        except (ConfigReadError, ConfigWriteError) as exc:
            say(text=f"Could not save {key}: {exc}", thread_ts=event.get("thread_ts"))
            return
        say(text=f"{key} = {value} (saved by the host bot)", thread_ts=event.get("thread_ts"))

    @app.event("message")
    def anything_else(say: Say, event: dict[str, Any]) -> None:
        # Catch-all: every message the plugin did not claim ends here.
        if event.get("subtype") or event.get("bot_id"):
            return
        if not chatty:
            return
        text = str(event.get("text") or "").strip()
        say(text=f"I don't know `{text}`. Type `help`.", thread_ts=event.get("thread_ts"))

    @app.event("app_mention")
    def mentioned(say: Say, event: dict[str, Any]) -> None:
        say(text="Hi! Type `help` in the admin channel.", thread_ts=event.get("thread_ts"))


def build_host_app(app: App, config_path: Path, *, chatty: bool = False) -> list[Any]:
    """The host's listeners first, then every plugin, as SlackONOS loads them."""
    add_host_listeners(app, config_path, chatty=chatty)
    return load_plugins(app, config_path=str(config_path))


def _typed(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        return value
