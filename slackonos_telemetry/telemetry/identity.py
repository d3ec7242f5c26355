"""The anonymous instance ID: a canonical UUID4, made once, by the bot's first start while
enabled (never by reading), and kept where it survives a restart.

- In the config file, as ``telemetryInstanceId``, when it can be written.
- A config that cannot be written (a ConfigMap, a ``:ro`` mount): an ID already in it
  is used as is; otherwise the ID is kept in the state folder (the outbox's ``meta``).
- Nowhere to keep one: there is no ID, and nothing is sent (an ID that would not
  survive a restart would count every start as a new bot).

Anything else found (a UUID1, which embeds a MAC address, the nil UUID, ``urn:uuid:``
or braced forms, upper case) is never used: it is replaced.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slackonos_telemetry.config.keys import INSTANCE_ID_KEY
from slackonos_telemetry.config.settings import Settings
from slackonos_telemetry.config.store import ConfigReadError, ConfigStore, ConfigWriteError
from slackonos_telemetry.telemetry.events import is_canonical_uuid4
from slackonos_telemetry.telemetry.outbox import Outbox

log = logging.getLogger(__name__)

STATE_KEY = "instanceId"


@dataclass(frozen=True)
class Found:
    """The ID in use, or None with the reason there is none."""

    value: str | None
    where: str = ""  # "config" or "state"
    problem: str | None = None


def instance_id_now(settings: Settings) -> str | None:
    """The ID events are made with now, without making one."""
    return _existing(settings).value


def _existing(settings: Settings) -> Found:
    try:
        value = ConfigStore(settings.config_path).read().get(INSTANCE_ID_KEY)
    except ConfigReadError:
        return Found(None)
    if is_canonical_uuid4(value):
        return Found(value, "config")
    kept = Outbox(settings.state).meta().get(STATE_KEY)
    return Found(kept, "state") if is_canonical_uuid4(kept) else Found(None)


def ensure_instance_id(settings: Settings) -> Found:
    """The ID, made now if there is none. Never raises.

    Made under the config lock (or the outbox's), so processes starting together on a
    fresh config all end with the one ID the first of them wrote.
    """
    found = _existing(settings)
    if found.value is not None:
        return found

    def fill_in(current: dict[str, Any]) -> dict[str, Any] | None:
        if is_canonical_uuid4(current.get(INSTANCE_ID_KEY)):
            return None
        if INSTANCE_ID_KEY in current:
            log.warning("replacing %s: not a canonical UUID4", INSTANCE_ID_KEY)
        return {INSTANCE_ID_KEY: str(uuid.uuid4())}

    try:
        _, after = ConfigStore(settings.config_path).modify(fill_in)
        return Found(str(after[INSTANCE_ID_KEY]), "config")
    except ConfigReadError as exc:
        return Found(None, problem=str(exc))
    except ConfigWriteError as exc:
        if not exc.read_only:
            return Found(None, problem=str(exc))
        config_problem = exc.reason
    try:
        with Outbox(settings.state).transaction() as outbox:
            kept = outbox.meta().get(STATE_KEY)
            if not is_canonical_uuid4(kept):
                kept = str(uuid.uuid4())
                outbox.change_meta(**{STATE_KEY: kept})
        return Found(kept, "state")
    except OSError as exc:
        return Found(
            None,
            problem=(
                f"no instance ID can be kept: {settings.config_path} cannot be written "
                f"({config_problem}) and neither can the state folder ({exc}); nothing is "
                f"sent. Fix: set {INSTANCE_ID_KEY} in the config file, or TELEMETRY_STATE_DIR "
                "to a folder the bot can write"
            ),
        )


def new_instance_id(settings: Settings) -> tuple[str | None, str, Path]:
    """Replace the ID with a new one; returns (old, new, where it was saved). Raises the
    store's errors (an ID in a read-only config cannot be replaced) or OSError."""
    new_value = str(uuid.uuid4())
    store = ConfigStore(settings.config_path)
    try:
        before = store.update({INSTANCE_ID_KEY: new_value})
    except ConfigWriteError as exc:
        if not exc.read_only or INSTANCE_ID_KEY in store.read():
            raise
        config_error = exc
    else:
        old = before.get(INSTANCE_ID_KEY)
        return (old if isinstance(old, str) else None), new_value, settings.config_path
    # A read-only config without an ID: the ID lives in the state folder.
    outbox = Outbox(settings.state)
    try:
        with outbox.transaction() as transaction:
            old = transaction.meta().get(STATE_KEY)
            transaction.change_meta(**{STATE_KEY: new_value})
    except OSError as exc:
        raise ConfigWriteError(
            settings.config_path,
            f"{config_error.reason}, and the state folder cannot be written either "
            f"({exc.strerror or exc}: {settings.state.folder})",
        ) from None
    return (old if isinstance(old, str) else None), new_value, outbox.path
