"""The anonymous instance ID: a canonical UUID4, made once, on first need, kept in the config.

Anything else found in the file (a UUID1, which embeds a MAC address, the nil
UUID, ``urn:uuid:`` or braced forms, upper case) is never used: it is replaced.
"""

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


def is_canonical_uuid4(value: Any) -> bool:
    """A UUID4 in its canonical form: 36 lower-case characters with hyphens."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == value


def existing_instance_id(store: ConfigStore) -> str | None:
    """The persisted ID, without making one (None when there is none, it is not a
    canonical UUID4, or the file cannot be read)."""
    try:
        value = store.read().get(INSTANCE_ID_KEY)
    except ConfigReadError:
        return None
    return value if is_canonical_uuid4(value) else None


def ensure_instance_id(store: ConfigStore) -> InstanceId:
    """The persisted ID, made now if missing or unusable. Never raises.

    The check and the write happen under the config lock, so processes starting
    together on a fresh config all end with the one ID the first of them wrote.
    """
    found = existing_instance_id(store)
    if found:
        return InstanceId(found, persisted=True)

    def fill_in(current: dict[str, Any]) -> dict[str, Any] | None:
        if is_canonical_uuid4(current.get(INSTANCE_ID_KEY)):
            return None
        if INSTANCE_ID_KEY in current:
            log.warning("replacing %s: not a canonical UUID4", INSTANCE_ID_KEY)
        return {INSTANCE_ID_KEY: str(uuid.uuid4())}

    try:
        _, after = store.modify(fill_in)
    except (ConfigReadError, ConfigWriteError) as exc:
        problem = f"instance ID not saved, used for this process only: {exc}"
        return InstanceId(_process_only_id(store), persisted=False, problem=problem)
    return InstanceId(str(after[INSTANCE_ID_KEY]), persisted=True)


def current_instance_id(store: ConfigStore) -> str | None:
    """The ID events are made with now: the persisted one, else this process's own
    (when the file could not take one), else None."""
    found = existing_instance_id(store)
    if found:
        return found
    with _process_only_guard:
        return _process_only_ids.get(str(store.path))


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
