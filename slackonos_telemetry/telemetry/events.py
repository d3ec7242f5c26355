"""The three events and their properties (SPEC section 4), as made and as checked at send time.

Nothing here names a host, a user, a channel, a path or a token: the only
identifier is the random instance ID. An event is checked again when it is sent
(``checked_for_wire``), whatever the outbox file holds by then: a hand edit, an
older version's entry or a retired ID never reach the wire.
"""

from __future__ import annotations

import enum
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypedDict

from slackonos_telemetry.config.identity import is_canonical_uuid4

SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86400


class EventName(str, enum.Enum):
    STARTUP = "startup"
    HEARTBEAT = "heartbeat"
    SHUTDOWN = "shutdown"

    def __str__(self) -> str:
        return self.value


EVENT_NAMES = tuple(name.value for name in EventName)


class Event(TypedDict):
    """One event as it is stored in the outbox and handed to the SDK."""

    event: str
    distinct_id: str
    uuid: str
    timestamp: str
    properties: dict[str, Any]


_TEXT = (str,)
_COUNT = (int,)
COMMON_PROPERTIES: dict[str, tuple[type, ...]] = {
    "instance_id": _TEXT,
    "os_platform": _TEXT,
    "os_release": _TEXT,
    "python_version": _TEXT,
    "app_version": _TEXT,
    "release": _TEXT,
    "$process_person_profile": (bool,),
}
PROPERTIES: dict[str, dict[str, tuple[type, ...]]] = {
    EventName.STARTUP.value: COMMON_PROPERTIES,
    EventName.HEARTBEAT.value: {**COMMON_PROPERTIES, "uptime_hours": _COUNT, "uptime_days": _COUNT},
    EventName.SHUTDOWN.value: {
        **COMMON_PROPERTIES,
        "total_runtime_hours": _COUNT,
        "total_runtime_days": _COUNT,
    },
}
# PostHog's automatic properties: the only ones the SDK may add on the way out.
SDK_PROPERTIES = frozenset(
    {
        "$lib",
        "$lib_version",
        "$is_server",
        "$geoip_disable",
        "$os",
        "$os_distro",
        "$os_version",
        "$python_runtime",
        "$python_version",
    }
)


@dataclass(frozen=True)
class RuntimeFacts:
    """What every event says about where it runs."""

    app_version: str
    release: str
    os_platform: str = sys.platform
    os_release: str = ""
    python_version: str = ""

    @classmethod
    def gather(cls, app_version: str, release: str) -> RuntimeFacts:
        import platform  # 15 ms: paid by the tracker thread, not by importing this module

        return cls(
            app_version=app_version,
            release=release,
            os_platform=sys.platform,
            os_release=platform.release(),
            python_version=platform.python_version(),
        )


def make_event(
    name: EventName | str,
    instance_id: str,
    facts: RuntimeFacts,
    seconds_running: float = 0.0,
    now: datetime | None = None,
) -> Event:
    """A new event with its own uuid and creation time, kept through every retry."""
    name = EventName(name)
    properties: dict[str, Any] = {
        "instance_id": instance_id,
        "os_platform": facts.os_platform,
        "os_release": facts.os_release,
        "python_version": facts.python_version,
        "app_version": facts.app_version,
        "release": facts.release,
        "$process_person_profile": False,
    }
    whole_hours = int(max(seconds_running, 0.0) // SECONDS_PER_HOUR)
    whole_days = int(max(seconds_running, 0.0) // SECONDS_PER_DAY)
    if name is EventName.HEARTBEAT:
        properties.update(uptime_hours=whole_hours, uptime_days=whole_days)
    elif name is EventName.SHUTDOWN:
        properties.update(total_runtime_hours=whole_hours, total_runtime_days=whole_days)
    return {
        "event": name.value,
        "distinct_id": instance_id,
        "uuid": str(uuid.uuid4()),
        "timestamp": (now or datetime.now(timezone.utc)).isoformat(),
        "properties": properties,
    }


class Unsendable(ValueError):
    """An outbox entry that must not be sent, and why (for one log line)."""


def checked_for_wire(entry: Any, instance_id: str | None) -> Event:
    """``entry`` rebuilt with exactly the fields and properties SPEC section 4 allows,
    carrying the current instance ID. Raises Unsendable otherwise.

    Properties the section does not list are left out (an older version's or a
    hand edit's extra fields); a missing or mistyped one makes the entry unusable.
    """
    if not isinstance(entry, dict):
        raise Unsendable("not an object")
    name = entry.get("event")
    if not isinstance(name, str) or name not in PROPERTIES:
        raise Unsendable(f"unknown event {name!r}")
    allowed = PROPERTIES[name]
    if instance_id is None or entry.get("distinct_id") != instance_id:
        raise Unsendable("made with another instance ID")
    if not is_canonical_uuid4(entry.get("uuid")):
        raise Unsendable("its uuid is not a UUID4")
    timestamp = entry.get("timestamp")
    if not isinstance(timestamp, str) or not _is_aware_iso(timestamp):
        raise Unsendable("its timestamp is not an ISO 8601 time with a UTC offset")
    given = entry.get("properties")
    if not isinstance(given, dict):
        raise Unsendable("it has no properties")
    properties: dict[str, Any] = {}
    for key, types in allowed.items():
        value = given.get(key)
        if type(value) not in types or (isinstance(value, int) and value < 0):
            raise Unsendable(f"property {key} is missing or not {types[0].__name__}")
        properties[key] = value
    if properties["instance_id"] != instance_id or properties["$process_person_profile"]:
        raise Unsendable("its properties name another instance or a person profile")
    return {
        "event": name,
        "distinct_id": instance_id,
        "uuid": entry["uuid"],
        "timestamp": timestamp,
        "properties": properties,
    }


def wire_properties(properties: dict[str, Any], event_name: str) -> dict[str, Any]:
    """What of a prepared message's properties may go on the wire: the event's own and
    the SDK's automatic ones (never, say, ``$release_id`` from the environment)."""
    allowed = PROPERTIES.get(event_name, {})
    return {
        key: value for key, value in properties.items() if key in allowed or key in SDK_PROPERTIES
    }


def _is_aware_iso(text: str) -> bool:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.utcoffset() is not None
