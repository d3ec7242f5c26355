"""What each admin command does and answers. Slack-free: the middleware posts the answer."""

from __future__ import annotations

import json
from collections.abc import Mapping

from slackonos_telemetry.admin import collect_status, reset_instance_id, save_enabled
from slackonos_telemetry.config.keys import ENABLED_KEY
from slackonos_telemetry.config.settings import Settings, resolve_settings
from slackonos_telemetry.config.store import ConfigReadError, ConfigWriteError
from slackonos_telemetry.config.words import BOOLEAN_WORDS_TEXT, parse_bool_word
from slackonos_telemetry.slack.blocks import SlackMessage, status_message
from slackonos_telemetry.slack.commands import Command, CommandKind
from slackonos_telemetry.telemetry.events import HEARTBEAT
from slackonos_telemetry.telemetry.tracker import Tracker

USAGE = f"Usage: `setconfig {ENABLED_KEY} <value>`, value one of {BOOLEAN_WORDS_TEXT}"
HELP = (
    "Telemetry commands (admin channel only):\n"
    "• `telemetry` or `telemetry status`: what is sent, where, and how to turn it off\n"
    "• `telemetry preview`: the exact JSON of the next heartbeat\n"
    "• `telemetry reset-id`: a new anonymous instance ID\n"
    f"• `setconfig {ENABLED_KEY} true|false`: turn telemetry on or off"
)


class AdminCommands:
    def __init__(
        self,
        tracker: Tracker,
        app_version: str,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.tracker = tracker
        self.config_path = tracker.config_path
        self.app_version = app_version
        self._environ = environ

    def run(self, command: Command) -> SlackMessage:
        if command.kind is CommandKind.SET_ENABLED:
            return self.set_enabled(command.argument)
        if command.kind is CommandKind.STATUS:
            return self.status()
        if command.kind is CommandKind.PREVIEW:
            return self.preview()
        if command.kind is CommandKind.RESET_ID:
            return self.reset_id()
        unknown = f"Unknown telemetry command `{command.argument}`.\n" if command.argument else ""
        return SlackMessage(unknown + HELP)

    def status(self) -> SlackMessage:
        report = collect_status(
            self.config_path,
            app_version=self.app_version,
            environ=self._environ,
            release=self.tracker.facts().release,  # what the events carry
        )
        return status_message(report, self.tracker.uptime_seconds)

    def set_enabled(self, typed: str | None) -> SlackMessage:
        if typed is None:
            settings = self._settings()
            state = "true" if settings.enabled else "false"
            return SlackMessage(
                f"`{ENABLED_KEY}` is {state} (source: {settings.source}).\n{USAGE}"
                + (f"\nWhy: {settings.reason}" if settings.reason else "")
            )
        value = parse_bool_word(typed)
        if value is None:
            return SlackMessage(
                f":x: `{typed}` is not a boolean. Use one of {BOOLEAN_WORDS_TEXT}. "
                "Nothing was changed."
            )
        return self._save(value)

    def toggle(self, turn_on: bool) -> tuple[SlackMessage, SlackMessage]:
        """The button: the answer, and the status to show in place of the old one."""
        answer = self._save(turn_on)
        return answer, self.status()

    def preview(self) -> SlackMessage:
        event = self.tracker.preview(HEARTBEAT)
        settings = self._settings()
        note = "" if settings.enabled else "\nTelemetry is off, so nothing would be sent."
        body = json.dumps(event, indent=2)
        return SlackMessage(f"The next heartbeat would send exactly this:\n```\n{body}\n```{note}")

    def reset_id(self) -> SlackMessage:
        try:
            change = reset_instance_id(self.config_path)
        except (ConfigReadError, ConfigWriteError) as exc:
            return _save_failed(exc)
        discarded = (
            f" {change.discarded} waiting event(s) with the old ID were discarded."
            if change.discarded
            else ""
        )
        return SlackMessage(
            f"New instance ID: `{change.current}` (was `{change.previous or 'none'}`), "
            f"saved to `{self.config_path}`. The old one is never used again.{discarded}"
        )

    def _save(self, enabled: bool) -> SlackMessage:
        try:
            change = save_enabled(self.config_path, enabled, self._environ)
        except (ConfigReadError, ConfigWriteError) as exc:
            return _save_failed(exc)
        self.tracker.refresh()
        word = "true" if enabled else "false"
        lines = [
            f"`{ENABLED_KEY}`: {change.previous_text} → {word}, saved to `{self.config_path}`."
        ]
        if change.discarded:
            lines.append(f"{change.discarded} waiting event(s) discarded: they will never be sent.")
        lines.append(_in_effect(change.settings, enabled))
        return SlackMessage("\n".join(lines))

    def _settings(self) -> Settings:
        return resolve_settings(self.config_path, self._environ)


def _in_effect(settings: Settings, saved: bool) -> str:
    state = "on" if settings.enabled else "off"
    if settings.enabled == saved:
        return f"Telemetry is now {state}."
    if settings.env_overrides_config:
        variable = settings.source.removeprefix("env:")
        return (
            f":warning: `{variable}` in the bot's environment overrides the file: "
            f"telemetry stays {state}."
        )
    return f":warning: Telemetry stays {state}: {settings.reason or settings.source}."


def _save_failed(exc: Exception) -> SlackMessage:
    return SlackMessage(f":x: Could not save: {exc}. Nothing was changed.")
