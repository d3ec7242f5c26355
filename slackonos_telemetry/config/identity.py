"""The anonymous instance ID: made once, on first need, and kept in the config file."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from slackonos_telemetry.config.keys import INSTANCE_ID_KEY
from slackonos_telemetry.config.store import ConfigReadError, ConfigStore, ConfigWriteError

log = logging.getLogger(__name__)

_process_only_ids: dict[str, str] = {}
_process_only_guard = threading.Lock()


@dataclass(frozen=True)
class InstanceId:
    value: str
    persisted: bool
    problem: str | None = None


def is_instance_id(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def existing_instance_id(store: ConfigStore) -> str | None:
    """The persisted ID, without making one (None when there is none or the file is bad)."""
    try:
        value = store.read().get(INSTANCE_ID_KEY)
    except ConfigReadError:
        return None
    return value if is_instance_id(value) else None


def ensure_instance_id(store: ConfigStore) -> InstanceId:
    """The persisted ID, made now if missing. Never raises.

    The check and the write happen under the config lock, so processes starting
    together on a fresh config all end with the one ID the first of them wrote.
    """
    found = existing_instance_id(store)
    if found:
        return InstanceId(found, persisted=True)

    def fill_in(current: dict[str, Any]) -> dict[str, Any] | None:
        if is_instance_id(current.get(INSTANCE_ID_KEY)):
            return None
        if INSTANCE_ID_KEY in current:
            log.warning("replacing %s %r: not a UUID", INSTANCE_ID_KEY, current[INSTANCE_ID_KEY])
        return {INSTANCE_ID_KEY: str(uuid.uuid4())}

    try:
        _, after = store.modify(fill_in)
    except (ConfigReadError, ConfigWriteError) as exc:
        problem = f"instance ID not saved, used for this process only: {exc}"
        return InstanceId(_process_only_id(store), persisted=False, problem=problem)
    return InstanceId(str(after[INSTANCE_ID_KEY]), persisted=True)


def new_instance_id(store: ConfigStore) -> tuple[str | None, str]:
    """Replace the ID with a new one; returns (old, new). Raises the store's errors."""
    new_value = str(uuid.uuid4())
    before = store.update({INSTANCE_ID_KEY: new_value})
    old = before.get(INSTANCE_ID_KEY)
    with _process_only_guard:
        _process_only_ids.pop(str(store.path), None)
    return (old if isinstance(old, str) else None), new_value


def _process_only_id(store: ConfigStore) -> str:
    with _process_only_guard:
        return _process_only_ids.setdefault(str(store.path), str(uuid.uuid4()))
