"""What each admin command does and answers. Slack-free: the caller posts the answer.

Every value put in an answer (what the user typed, paths, hosts, keys, versions) goes
through ``mrkdwn``: Slack shows it as text, never as a mention or a link.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from slackonos_telemetry._version import __version__
from slackonos_telemetry.admin import collect_status, preview_event
from slackonos_telemetry.config.keys import ENABLED_KEY
from slackonos_telemetry.config.settings import Settings, resolve_settings
from slackonos_telemetry.config.store import ConfigReadError, ConfigWriteError
from slackonos_telemetry.config.words import BOOLEAN_WORDS_TEXT, parse_bool_word
from slackonos_telemetry.slack import mrkdwn
from slackonos_telemetry.slack.blocks import SlackMessage, status_message
from slackonos_telemetry.slack.commands import Command, CommandKind, help_text
from slackonos_telemetry.telemetry import consent, opt_out
from slackonos_telemetry.telemetry.events import EventName, RuntimeFacts
from slackonos_telemetry.telemetry.outbox import Outbox
from slackonos_telemetry.telemetry.release import resolve_release
from slackonos_telemetry.telemetry.session import instance_uptime
from slackonos_telemetry.telemetry.tracker import Tracker

USAGE = f"Usage: `setconfig {ENABLED_KEY} &lt;value&gt;`, value one of {BOOLEAN_WORDS_TEXT}"


class AdminCommands:
    """The commands of one config file in this process. ``tracker``: this process's, or
    None where it does not track (a forked child answers commands all the same)."""

    def __init__(
        self,
        config_path: Path,
        *,
        app_version: str | None = None,
        release: str | None = None,
        tracker: Tracker | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config_path = config_path
        self.tracker = tracker
        self._app_version = app_version or __version__
        self._release = release
        self._environ = environ
        self._facts: RuntimeFacts | None = None
        self._facts_lock = threading.Lock()
        self._handlers: dict[CommandKind, Callable[[Command], SlackMessage]] = {
            CommandKind.SET_ENABLED: lambda command: self.set_enabled(command.argument),
            CommandKind.STATUS: lambda _command: self.status(),
            CommandKind.PREVIEW: lambda _command: self.preview(),
            CommandKind.RESET_ID: lambda _command: self.reset_id(),
            CommandKind.HELP: lambda _command: SlackMessage(help_text()),
        }

    def run(self, command: Command) -> SlackMessage:
        return self._handlers[command.kind](command)

    def settings(self) -> Settings:
        return resolve_settings(self.config_path, self._environ)

    def facts(self) -> RuntimeFacts:
        """What the events carry (may run `git describe` once)."""
        if self.tracker is not None:
            return self.tracker.facts()
        with self._facts_lock:
            if self._facts is None:
                release = resolve_release(self.settings().release_override, self._release)
                self._facts = RuntimeFacts.gather(self._app_version, release)
            return self._facts

    def uptime(self) -> float | None:
        if self.tracker is not None:
            return self.tracker.uptime_seconds
        return instance_uptime(Outbox(self.settings().state))

    def status(self) -> SlackMessage:
        facts = self.facts()
        report = collect_status(
            self.config_path,
            app_version=facts.app_version,
            release=facts.release,
            environ=self._environ,
        )
        return status_message(report, self.uptime())

    def set_enabled(self, typed: str | None) -> SlackMessage:
        if typed is None:
            decision = consent.decide(self.settings())
            lines = [
                f"`{ENABLED_KEY}` is {_word(decision.enabled)}: telemetry is "
                f"{mrkdwn.escape(consent.describe(decision))}.",
                USAGE,
            ]
            if decision.reason:
                lines.append(f"Why: {mrkdwn.escape(decision.reason)}")
            return SlackMessage("\n".join(lines))
        value = parse_bool_word(typed)
        if value is None:
            return SlackMessage(
                f":x: {mrkdwn.code(typed)} is not a boolean. Use one of {BOOLEAN_WORDS_TEXT}. "
                "Nothing was changed."
            )
        return self._save(value)

    def toggle(self, turn_on: bool) -> tuple[SlackMessage, SlackMessage]:
        """The button: the answer, and the status to show in place of the old one."""
        answer = self._save(turn_on)
        return answer, self.status()

    def preview(self) -> SlackMessage:
        facts = self.facts()
        preview = preview_event(
            self.config_path,
            EventName.HEARTBEAT,
            app_version=facts.app_version,
            release=facts.release,
            uptime_seconds=self.uptime() or 0.0,
            environ=self._environ,
        )
        body = json.dumps(preview.message, indent=2)
        note = "" if preview.decision.enabled else "\nTelemetry is off, so nothing would be sent."
        return SlackMessage(
            "The next heartbeat would send exactly this (the SDK's own properties included):\n"
            f"{mrkdwn.block(body)}{note}"
        )

    def reset_id(self) -> SlackMessage:
        try:
            change = opt_out.reset_instance_id(self.config_path, self._environment())
        except (ConfigReadError, ConfigWriteError, OSError) as exc:
            return _save_failed(exc)
        self._refresh()
        return SlackMessage(mrkdwn.escape("\n".join(change.lines())))

    def _save(self, enabled: bool) -> SlackMessage:
        try:
            change = opt_out.save_enabled(self.config_path, enabled, self._environment())
        except (ConfigReadError, ConfigWriteError) as exc:
            return _save_failed(exc)
        self._refresh()
        return SlackMessage(mrkdwn.escape("\n".join(change.lines())))

    def _refresh(self) -> None:
        if self.tracker is not None:
            self.tracker.refresh()

    def _environment(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ


def _word(value: bool) -> str:
    return "true" if value else "false"


def _save_failed(exc: Exception) -> SlackMessage:
    return SlackMessage(f":x: Could not save: {mrkdwn.escape(str(exc))}. Nothing was changed.")
