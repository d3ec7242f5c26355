"""What each admin command does and answers. Slack-free: the caller posts the answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from slackonos_telemetry.admin import (
    EnabledChange,
    bool_text,
    collect_status,
    preview_event,
    reset_instance_id,
    save_enabled,
    wire_note,
)
from slackonos_telemetry.config.keys import ENABLED_KEY
from slackonos_telemetry.config.settings import Settings, resolve_settings
from slackonos_telemetry.config.store import ConfigReadError, ConfigWriteError
from slackonos_telemetry.config.words import BOOLEAN_WORDS_TEXT, parse_bool_word
from slackonos_telemetry.slack.blocks import SlackMessage, status_message
from slackonos_telemetry.slack.commands import Command, CommandKind, help_text
from slackonos_telemetry.telemetry.events import EventName
from slackonos_telemetry.telemetry.tracker import Tracker

USAGE = f"Usage: `setconfig {ENABLED_KEY} <value>`, value one of {BOOLEAN_WORDS_TEXT}"


class AdminCommands:
    def __init__(self, tracker: Tracker, environ: Mapping[str, str] | None = None) -> None:
        self.tracker = tracker
        self.config_path = tracker.config_path
        self._environ = environ
        self._handlers: dict[CommandKind, Callable[[Command], SlackMessage]] = {
            CommandKind.SET_ENABLED: lambda command: self.set_enabled(command.argument),
            CommandKind.STATUS: lambda _command: self.status(),
            CommandKind.PREVIEW: lambda _command: self.preview(),
            CommandKind.RESET_ID: lambda _command: self.reset_id(),
            CommandKind.HELP: lambda _command: SlackMessage(help_text()),
        }

    def run(self, command: Command) -> SlackMessage:
        return self._handlers[command.kind](command)

    def status(self) -> SlackMessage:
        facts = self.tracker.facts()  # what the events carry
        report = collect_status(
            self.config_path,
            app_version=facts.app_version,
            release=facts.release,
            environ=self._environ,
        )
        return status_message(report, self.tracker.uptime_seconds)

    def set_enabled(self, typed: str | None) -> SlackMessage:
        if typed is None:
            settings = self._settings()
            return SlackMessage(
                f"`{ENABLED_KEY}` is {bool_text(settings.enabled)} (source: {settings.source}).\n"
                + USAGE
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
        facts = self.tracker.facts()
        preview = preview_event(
            self.config_path,
            EventName.HEARTBEAT,
            app_version=facts.app_version,
            release=facts.release,
            uptime_seconds=self.tracker.uptime_seconds,
            environ=self._environ,
        )
        body = json.dumps(preview.message, indent=2)
        note = "" if preview.settings.enabled else "\nTelemetry is off, so nothing would be sent."
        return SlackMessage(
            "The next heartbeat would send exactly this (the SDK's own properties included):\n"
            f"```\n{body}\n```{note}"
        )

    def reset_id(self) -> SlackMessage:
        try:
            change = reset_instance_id(self.config_path)
        except (ConfigReadError, ConfigWriteError) as exc:
            return _save_failed(exc)
        self.tracker.refresh()
        lines = [
            f"New instance ID: `{change.current}` (was `{change.previous or 'none'}`), "
            f"saved to `{self.config_path}`. The old one is never used again."
        ]
        if change.cleared.discarded:
            lines.append(
                f"{change.cleared.discarded} waiting event(s) with the old ID were discarded."
            )
        note = wire_note(change.cleared)
        if note:
            lines.append(note)
        return SlackMessage("\n".join(lines))

    def _save(self, enabled: bool) -> SlackMessage:
        try:
            change = save_enabled(self.config_path, enabled, self._environ)
        except (ConfigReadError, ConfigWriteError) as exc:
            return _save_failed(exc)
        self.tracker.refresh()
        return SlackMessage("\n".join(_saved_lines(change, self.config_path)))

    def _settings(self) -> Settings:
        return resolve_settings(self.config_path, self._environ)


def _saved_lines(change: EnabledChange, config_path: object) -> list[str]:
    word = bool_text(change.enabled)
    if change.unchanged:
        lines = [f"`{ENABLED_KEY}` is already {word} in `{config_path}`: nothing changed."]
    else:
        lines = [f"`{ENABLED_KEY}`: {change.previous_text} → {word}, saved to `{config_path}`."]
    cleared = change.cleared
    if cleared is not None and cleared.discarded:
        lines.append(f"{cleared.discarded} waiting event(s) discarded: they will never be sent.")
    note = wire_note(cleared)
    if note:
        lines.append(note)
    lines.append(_in_effect(change.settings, change.enabled))
    return lines


def _in_effect(settings: Settings, saved: bool) -> str:
    state = "on" if settings.enabled else "off"
    if settings.enabled == saved:
        return f"Telemetry is now {state}."
    if settings.env_overrides_config and settings.source.variable:
        return (
            f":warning: `{settings.source.variable}` in the bot's environment overrides the "
            f"file: telemetry stays {state}."
        )
    return f":warning: Telemetry stays {state}: {settings.reason or settings.source}."


def _save_failed(exc: Exception) -> SlackMessage:
    return SlackMessage(f":x: Could not save: {exc}. Nothing was changed.")
