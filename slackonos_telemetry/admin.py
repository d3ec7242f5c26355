"""What an admin can see and change, shared by the CLI and the Slack commands.

The changes (``save_enabled``, ``reset_instance_id``) raise ConfigReadError or
ConfigWriteError and then have changed nothing. The report (``collect_status``)
and the preview only read: they create no file, folder, lock file or ID.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slackonos_telemetry._version import __version__
from slackonos_telemetry.config.identity import (
    current_instance_id,
    existing_instance_id,
    new_instance_id,
)
from slackonos_telemetry.config.keys import ENABLED_KEY
from slackonos_telemetry.config.paths import outbox_path_for
from slackonos_telemetry.config.redact import mask_api_key
from slackonos_telemetry.config.settings import Settings, resolve_settings
from slackonos_telemetry.config.store import ConfigStore
from slackonos_telemetry.telemetry.events import EventName, RuntimeFacts, make_event
from slackonos_telemetry.telemetry.outbox import Cleared, Outbox, OutboxStats, Wire
from slackonos_telemetry.telemetry.release import resolve_release

log = logging.getLogger(__name__)

NO_ID_YET = "(made on the bot's first start while enabled)"


class _Missing:
    def __repr__(self) -> str:
        return "(not set)"


MISSING: Any = _Missing()


def bool_text(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True)
class EnabledChange:
    previous: Any  # the value in the file before, MISSING when there was none
    enabled: bool
    settings: Settings  # in effect after the change
    cleared: Cleared | None  # what turning it off discarded

    @property
    def unchanged(self) -> bool:
        return self.previous is self.enabled

    @property
    def previous_text(self) -> str:
        if isinstance(self.previous, bool):
            return bool_text(self.previous)
        return repr(self.previous)


@dataclass(frozen=True)
class IdChange:
    previous: str | None
    current: str
    cleared: Cleared


def save_enabled(
    config_path: Path, enabled: bool, environ: Mapping[str, str] | None = None
) -> EnabledChange:
    """Save ``telemetryEnabled`` (nothing is written when it already holds that value);
    turning it off empties the outbox at once."""
    before, _ = ConfigStore(config_path).modify(
        lambda current: None if current.get(ENABLED_KEY) is enabled else {ENABLED_KEY: enabled}
    )
    cleared = None if enabled else discard_outbox(config_path)
    return EnabledChange(
        previous=before.get(ENABLED_KEY, MISSING),
        enabled=enabled,
        settings=resolve_settings(config_path, environ),
        cleared=cleared,
    )


def reset_instance_id(config_path: Path) -> IdChange:
    """A new ID; waiting events carry the old one, so they are discarded with it."""
    previous, current = new_instance_id(ConfigStore(config_path))
    return IdChange(previous, current, discard_outbox(config_path))


def discard_outbox(config_path: Path) -> Cleared:
    """Empty the outbox (never raises). The config is saved first, so even when this
    fails the sender, which checks it before every request, sends none of them."""
    try:
        return Outbox(outbox_path_for(config_path)).clear()
    except Exception as exc:  # the opt-out is saved whatever the outbox holds
        log.warning("could not empty the telemetry outbox: %s", exc)
        return Cleared(0, Wire.IDLE)


def wire_note(cleared: Cleared | None) -> str | None:
    """What an answer says about a request that was under way when the outbox emptied."""
    if cleared is None or cleared.wire is Wire.IDLE:
        return None
    if cleared.wire is Wire.FINISHED:
        return (
            "One request was already on the wire when this was saved; it finished, so its "
            "events (made before) may have reached PostHog. Nothing else will be sent."
        )
    return (
        "One request is still on the wire from before this was saved: its events may still "
        "reach PostHog. Nothing else will be sent."
    )


@dataclass(frozen=True)
class StatusReport:
    settings: Settings
    instance_id: str | None
    instance_id_persisted: bool
    outbox: OutboxStats
    app_version: str
    release: str
    warnings: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "enabled": settings.enabled,
            "source": settings.source.value,
            "reason": settings.reason,
            "instance_id": self.instance_id,
            "instance_id_persisted": self.instance_id_persisted,
            "host": settings.host_shown,
            "api_key": mask_api_key(settings.api_key),
            "config_path": str(settings.config_path),
            "outbox_pending": self.outbox.pending,
            "outbox_dropped": self.outbox.dropped,
            "app_version": self.app_version,
            "release": self.release,
            "debug": settings.debug,
        }

    def text_lines(self) -> list[str]:
        settings = self.settings
        state = "enabled" if settings.enabled else "disabled"
        lines = [f"Telemetry: {state} (source: {settings.source})"]
        if settings.reason:
            lines.append(f"  reason: {settings.reason}")
        lines += [
            f"Instance ID: {self.instance_id_text()}",
            f"Host: {settings.host_shown} ({settings.host_source})",
            f"API key: {mask_api_key(settings.api_key)} ({settings.api_key_source})",
            f"Config file: {settings.config_path}",
            f"Outbox: {self.outbox.pending} pending, {self.outbox.dropped} dropped, "
            f"last delivery: {self.outbox.last_delivery or 'never'}",
            f"App version: {self.app_version}, release: {self.release}",
            f"Debug (print payloads, send nothing): {'on' if settings.debug else 'off'}",
        ]
        lines += [f"Warning: {warning}" for warning in (*settings.warnings, *self.warnings)]
        return lines

    def instance_id_text(self) -> str:
        if self.instance_id is None:
            return NO_ID_YET
        if self.instance_id_persisted:
            return self.instance_id
        return f"{self.instance_id} (not saved in the config file: used by this process only)"


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
    store = ConfigStore(config_path)
    persisted = existing_instance_id(store)
    instance_id = persisted or current_instance_id(store)
    outbox = Outbox(outbox_path_for(config_path))
    ran_with = outbox.last_run()
    return StatusReport(
        settings=settings,
        instance_id=instance_id,
        instance_id_persisted=persisted is not None,
        outbox=outbox.stats(),
        app_version=app_version or _text(ran_with.get("app_version")) or __version__,
        release=release
        or _text(ran_with.get("release"))
        or resolve_release(settings.release_override),
        warnings=_folder_warnings(config_path),
    )


@dataclass(frozen=True)
class Preview:
    message: dict[str, Any]  # the event as the SDK would put it on the wire
    sources: dict[str, str]  # where app_version and release came from
    settings: Settings


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
    from slackonos_telemetry.telemetry.sender import PosthogSender

    env = os.environ if environ is None else environ
    settings = resolve_settings(config_path, env)
    ran_with = Outbox(outbox_path_for(config_path)).last_run()
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
    store = ConfigStore(config_path)
    instance_id = current_instance_id(store) or NO_ID_YET
    facts = RuntimeFacts.gather(app_version or __version__, release or "unknown")
    event = make_event(name, instance_id, facts, uptime_seconds)
    sender = PosthogSender(settings.api_key, settings.host)
    try:
        message = sender.prepare(event)
    finally:
        sender.close()
    return Preview(message, sources, settings)


def _folder_warnings(config_path: Path) -> tuple[str, ...]:
    folder = Path(os.path.realpath(config_path)).parent
    try:
        mode = folder.stat().st_mode
    except OSError:
        return ()
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"{folder} may be written by other users: any of them can make or hold its lock "
            "files and so block an opt-out; keep the config in a folder only the bot's user "
            "may write",
        )
    return ()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
