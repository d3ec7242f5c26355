"""The changes an admin can make, shared by the CLI and the Slack commands.

Each raises ConfigReadError or ConfigWriteError and then has changed nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config_path import outbox_path_for
from .config_store import ENABLED_KEY, ConfigStore
from .instance_id import new_instance_id
from .outbox import Outbox
from .settings import Settings, resolve_settings

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
