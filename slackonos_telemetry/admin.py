"""What an admin can see, shared by the CLI and the Slack commands: the status and the
preview. Both only read: they create no file, folder, lock file or ID. (What an admin
can change is ``telemetry.consent``'s.)
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from slackonos_telemetry._version import __version__
from slackonos_telemetry.config.files import own_file_problem, state_folder_problem
from slackonos_telemetry.config.jsonfile import JSONFileError
from slackonos_telemetry.config.paths import StateReason, config_lock_path
from slackonos_telemetry.config.redact import mask_api_key
from slackonos_telemetry.config.settings import Settings, resolve_settings
from slackonos_telemetry.config.storages import load_tables
from slackonos_telemetry.forksafe import importing
from slackonos_telemetry.telemetry import consent
from slackonos_telemetry.telemetry.disclosure import collected_names
from slackonos_telemetry.telemetry.events import EventName, RuntimeFacts, make_event
from slackonos_telemetry.telemetry.identity import STATE_KEY, instance_id_now
from slackonos_telemetry.telemetry.outbox import Outbox, OutboxStats, old_outbox_taken_over
from slackonos_telemetry.telemetry.release import resolve_release

NO_ID_YET = "(made on the bot's first start while enabled)"


@dataclass(frozen=True)
class StatusReport:
    settings: Settings
    decision: consent.Decision
    instance_id: str | None
    instance_id_where: str | None  # "config" or "state"
    outbox: OutboxStats
    old_outbox_pending: int  # events an older version left beside the config, not taken over
    meta: Mapping[str, Any]
    app_version: str
    release: str
    warnings: tuple[str, ...] = ()

    @property
    def state_problem(self) -> str | None:
        """Why nothing can be kept (and so nothing is sent), with the fix, or None."""
        settings = self.settings
        if settings.state.writable and not self.outbox.problem:
            return None
        if self.outbox.problem:
            return self.outbox.problem
        return (
            f"no folder can be written to keep the outbox and the instance ID "
            f"({settings.state.folder} included), so nothing is sent; fix: set "
            "telemetryInstanceId in the config file, or TELEMETRY_STATE_DIR to a folder the "
            "bot can write"
        )

    @property
    def first_send_at(self) -> str | None:
        until = consent.first_send_at(self.settings, self.meta)
        if until is None or until <= datetime.now(timezone.utc).timestamp():
            return None
        return datetime.fromtimestamp(until, timezone.utc).isoformat(timespec="seconds")

    def as_json(self) -> dict[str, Any]:
        settings, decision = self.settings, self.decision
        return {
            "enabled": decision.enabled,
            "source": decision.source.value,
            "reason": decision.reason,
            "consent": decision.consent.value,
            "instance_id": self.instance_id,
            "instance_id_persisted": self.instance_id is not None,
            "instance_id_kept_in": self.instance_id_where,
            "host": settings.host_shown,
            "api_key": mask_api_key(settings.api_key),
            "config_path": str(settings.config_path),
            "outbox_pending": self.outbox.pending + self.old_outbox_pending,
            "outbox_dropped": self.outbox.dropped,
            "last_delivery": self.outbox.last_delivery,
            "first_event_at": self.first_send_at,
            "app_version": self.app_version,
            "release": self.release,
            "debug": settings.debug,
            "sources": {
                "enabled": decision.source.value,
                "api_key": settings.api_key_source.value,
                "host": settings.host_source.value,
            },
            "state_dir": str(settings.state.folder),
            "state_reason": str(settings.state.reason),
            "state_problem": self.state_problem,
            "warnings": [*settings.warnings, *self.warnings],
        }

    def text_lines(self) -> list[str]:
        settings, decision = self.settings, self.decision
        lines = [f"Telemetry: {consent.describe(decision)}"]
        if decision.reason:
            lines.append(f"  reason: {decision.reason}")
        lines += [
            f"Instance ID: {self.instance_id_text()}",
            f"Host: {settings.host_shown} ({settings.host_source})",
            f"API key: {mask_api_key(settings.api_key)} ({settings.api_key_source})",
            f"Config file: {settings.config_path}",
            f"State: {settings.state.folder} ({settings.state.reason})",
            f"Outbox: {self.outbox_text()}, last delivery: {self.outbox.last_delivery or 'never'}",
            f"App version: {self.app_version}, release: {self.release}",
            f"Debug (print payloads, send nothing): {'on' if settings.debug else 'off'}",
            f"Collected: {collected_names()}.",
        ]
        if self.first_send_at:
            lines.append(f"First-run notice: nothing leaves before {self.first_send_at}.")
        if self.state_problem:
            lines.append(f"Problem: {self.state_problem}")
        lines += [f"Warning: {warning}" for warning in (*settings.warnings, *self.warnings)]
        return lines

    def outbox_text(self) -> str:
        text = f"{self.outbox.pending} pending, {self.outbox.dropped} dropped"
        if self.old_outbox_pending:
            text += (
                f", {self.old_outbox_pending} more left by an older version beside the "
                "config file (taken over at the next start)"
            )
        return text

    def instance_id_text(self) -> str:
        if self.instance_id is None:
            return NO_ID_YET
        if self.instance_id_where == "state":
            return f"{self.instance_id} (kept in the state folder: the config cannot be written)"
        return self.instance_id


def collect_status(
    config_path: Path,
    *,
    app_version: str | None = None,
    release: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> StatusReport:
    """The status, read only. ``app_version`` and ``release``: what the running bot
    uses; when not given, what the bot last ran with, else this package's own."""
    env = os.environ if environ is None else environ
    settings = resolve_settings(config_path, env)
    outbox = Outbox(settings.state)
    meta = outbox.meta()
    instance_id = instance_id_now(settings)
    where = None
    if instance_id is not None:
        where = "state" if meta.get(STATE_KEY) == instance_id else "config"
    ran_with = meta.get("lastRun", {})
    return StatusReport(
        settings=settings,
        decision=consent.decide(settings),
        instance_id=instance_id,
        instance_id_where=where,
        outbox=outbox.stats(),
        old_outbox_pending=_old_pending(settings, meta),
        meta=meta,
        app_version=app_version or _text(ran_with.get("app_version")) or __version__,
        release=release
        or _text(ran_with.get("release"))
        or resolve_release(settings.release_override),
        warnings=_folder_warnings(settings),
    )


@dataclass(frozen=True)
class Preview:
    message: dict[str, Any]  # the event as the SDK would put it on the wire
    sources: dict[str, str]  # where app_version and release came from
    settings: Settings
    decision: consent.Decision


def preview_event(
    config_path: Path,
    name: EventName,
    *,
    app_version: str | None = None,
    release: str | None = None,
    uptime_seconds: float = 0.0,
    environ: Mapping[str, str] | None = None,
) -> Preview:
    """The event ``name`` exactly as it would go on the wire now, the SDK's own properties
    computed by the installed SDK. Read only: sends and writes nothing. Imports posthog."""
    with importing():
        from slackonos_telemetry.telemetry.sender import PosthogSender

    env = os.environ if environ is None else environ
    settings = resolve_settings(config_path, env)
    ran_with = Outbox(settings.state).meta().get("lastRun", {})
    sources: dict[str, str] = {}
    if app_version:
        sources["app_version"] = "the running bot"
    elif _text(ran_with.get("app_version")):
        app_version = _text(ran_with.get("app_version"))
        sources["app_version"] = "what the bot last ran with"
    else:
        app_version = __version__
        sources["app_version"] = "this package's version (the bot has not run here yet)"
    if release:
        sources["release"] = "the running bot"
    elif _text(ran_with.get("release")):
        release = _text(ran_with.get("release"))
        sources["release"] = "what the bot last ran with"
    elif settings.release_override:
        release = settings.release_override
        sources["release"] = "SLACKONOS_RELEASE (the bot has not run here yet)"
    else:
        release = resolve_release(None, working_dir=Path.cwd())
        sources["release"] = "`git describe` here (the bot has not run here yet)"
    instance_id = instance_id_now(settings) or NO_ID_YET
    facts = RuntimeFacts.gather(app_version or __version__, release or "unknown")
    event = make_event(name, instance_id, facts, uptime_seconds)
    sender = PosthogSender(settings.api_key, settings.host)
    try:
        message = sender.prepare(event)
    finally:
        sender.close()
    return Preview(message, sources, settings, consent.decide(settings))


def _old_pending(settings: Settings, meta: Mapping[str, Any]) -> int:
    if old_outbox_taken_over(settings.state, meta):
        return 0
    try:
        tables = load_tables(settings.state.old_outbox) or {}
    except (JSONFileError, OSError):
        return 0
    events = tables.get("events", {})
    return len(events) if isinstance(events, dict) else 0


def _folder_warnings(settings: Settings) -> tuple[str, ...]:
    warnings: list[str] = []
    folder = Path(os.path.realpath(settings.config_path)).parent
    try:
        mode = folder.stat().st_mode
    except OSError:
        mode = 0
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        warnings.append(
            f"{folder} may be written by other users: any of them can replace the config "
            "file; keep it in a folder only the bot's user may write"
        )
    state = settings.state
    if state.reason is StateReason.CONFIG_READ_ONLY:
        warnings.append(
            f"the config's folder cannot be written: state is kept in {state.folder}; set "
            "TELEMETRY_STATE_DIR to choose the place"
        )
    try:
        found = os.lstat(state.folder)
    except OSError:
        problem = None
    else:
        # A link or a file where the folder goes is the outbox's problem; the advice here
        # (chmod) would change what a link leads to.
        problem = state_folder_problem(found) if stat.S_ISDIR(found.st_mode) else None
    if problem:
        warnings.append(f"{state.folder} {problem}")
    if not os.path.islink(state.folder):
        # The outbox's own problem is the status's; these are refused too, just as quietly.
        ours = (state.outbox_lock, state.send_lock, state.wire_lock, state.members_lock)
        for path in (*ours, state.members, config_lock_path(settings.config_path)):
            planted = own_file_problem(path)
            if planted:
                warnings.append(planted)
    return tuple(warnings)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
