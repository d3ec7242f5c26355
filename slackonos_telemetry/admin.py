"""What an admin can see and change, shared by the CLI and the Slack commands.

The changes (``save_enabled``, ``reset_instance_id``) raise ConfigReadError or
ConfigWriteError and then have changed nothing; the report (``collect_status``)
only reads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slackonos_telemetry._version import __version__
from slackonos_telemetry.config.identity import (
    InstanceId,
    ensure_instance_id,
    existing_instance_id,
    new_instance_id,
)
from slackonos_telemetry.config.keys import ENABLED_KEY
from slackonos_telemetry.config.paths import outbox_path_for
from slackonos_telemetry.config.settings import Settings, resolve_settings
from slackonos_telemetry.config.store import ConfigStore
from slackonos_telemetry.telemetry.outbox import Outbox, OutboxStats
from slackonos_telemetry.telemetry.release import resolve_release

log = logging.getLogger(__name__)


_MISSING = object()


@dataclass(frozen=True)
class EnabledChange:
    previous: Any
    enabled: bool
    settings: Settings
    discarded: int

    @property
    def previous_text(self) -> str:
        if self.previous is _MISSING:
            return "(not set)"
        if isinstance(self.previous, bool):
            return "true" if self.previous else "false"
        return repr(self.previous)


@dataclass(frozen=True)
class IdChange:
    previous: str | None
    current: str
    discarded: int


def save_enabled(
    config_path: Path, enabled: bool, environ: Mapping[str, str] | None = None
) -> EnabledChange:
    """Save ``telemetryEnabled``; turning it off empties the outbox at once."""
    before = ConfigStore(config_path).update({ENABLED_KEY: enabled})
    discarded = 0 if enabled else discard_outbox(config_path)
    return EnabledChange(
        previous=before.get(ENABLED_KEY, _MISSING),
        enabled=enabled,
        settings=resolve_settings(config_path, environ),
        discarded=discarded,
    )


def reset_instance_id(config_path: Path) -> IdChange:
    """A new ID; waiting events carry the old one, so they are discarded with it."""
    previous, current = new_instance_id(ConfigStore(config_path))
    return IdChange(previous, current, discard_outbox(config_path))


def discard_outbox(config_path: Path) -> int:
    try:
        return Outbox(outbox_path_for(config_path)).clear()
    except OSError as exc:
        # The opt-out is saved; the sender checks it before every send, so
        # these events still never leave.
        log.warning("could not empty the telemetry outbox: %s", exc)
        return 0


_MASK_VISIBLE_HEAD = 8
_MASK_VISIBLE_TAIL = 3


def mask_api_key(key: str) -> str:
    """Enough of the key to tell which one it is, not enough to reuse it."""
    if not key:
        return "(none)"
    if len(key) <= _MASK_VISIBLE_HEAD + _MASK_VISIBLE_TAIL:
        return key[:2] + "..."
    return f"{key[:_MASK_VISIBLE_HEAD]}...{key[-_MASK_VISIBLE_TAIL:]}"


@dataclass(frozen=True)
class StatusReport:
    settings: Settings
    instance_id: InstanceId | None
    outbox: OutboxStats
    app_version: str
    release: str

    def as_json(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "enabled": settings.enabled,
            "source": settings.source,
            "reason": settings.reason,
            "instance_id": self.instance_id.value if self.instance_id else None,
            "instance_id_persisted": bool(self.instance_id and self.instance_id.persisted),
            "host": settings.host,
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
        lines.append(f"Instance ID: {self.instance_id_text()}")
        lines += [
            f"Host: {settings.host or '(none)'} ({settings.host_source})",
            f"API key: {mask_api_key(settings.api_key)} ({settings.api_key_source})",
            f"Config file: {settings.config_path}",
            f"Outbox: {self.outbox.pending} pending, {self.outbox.dropped} dropped, "
            f"last delivery: {self.outbox.last_delivery or 'never'}",
            f"App version: {self.app_version}, release: {self.release}",
            f"Debug (print payloads, send nothing): {'on' if settings.debug else 'off'}",
        ]
        lines += [f"Warning: {warning}" for warning in settings.warnings]
        return lines

    def instance_id_text(self) -> str:
        if self.instance_id is None:
            return "(none yet: made on first use while enabled)"
        if self.instance_id.persisted:
            return self.instance_id.value
        return f"{self.instance_id.value} ({self.instance_id.problem})"


def collect_status(
    config_path: Path,
    *,
    app_version: str | None = None,
    environ: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    release: str | None = None,
) -> StatusReport:
    """Gather the status. An ID is made only while telemetry is on: an opted-out
    user's config file is not written by looking at the status."""
    env = os.environ if environ is None else environ
    settings = settings or resolve_settings(config_path, env)
    store = ConfigStore(config_path)
    instance: InstanceId | None
    if settings.enabled:
        instance = ensure_instance_id(store)
    else:
        found = existing_instance_id(store)
        instance = InstanceId(found, persisted=True) if found else None
    outbox = Outbox(outbox_path_for(config_path))
    return StatusReport(
        settings=settings,
        instance_id=instance,
        outbox=outbox.stats(),
        app_version=app_version or __version__,
        release=release or resolve_release(settings.release_override),
    )
