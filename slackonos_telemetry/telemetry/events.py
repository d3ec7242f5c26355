"""The three events and their properties (docs/CONTRACT.md, "Events on the wire"), as made
and as checked at send time. The allowlist here is the one source of what is collected:
the sender checks it, and every disclosure is made from it (``disclosure.py``).

Nothing here names a host, a user, a channel, a path or a token: the only
identifier is the random instance ID. An event is checked again when it is sent
(``checked_for_wire``), whatever the outbox file holds by then: a hand edit, an
older version's entry or a retired ID never reach the wire.
"""

from __future__ import annotations

import enum
import platform
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypedDict

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


@dataclass(frozen=True)
class Field:
    """One property that may go on the wire: its name, the types it may have, and what
    it is, in the words every disclosure uses (the notice, ``status``, the docs)."""

    name: str
    types: tuple[type, ...]
    meaning: str


_TEXT = (str,)
_COUNT = (int,)
COMMON_FIELDS = (
    Field(
        "instance_id",
        _TEXT,
        "a random ID made for this bot, derived from nothing about you "
        "(`telemetry reset-id` replaces it)",
    ),
    Field("os_platform", _TEXT, "the operating system's family: linux, darwin, win32"),
    Field("os_release", _TEXT, "the operating system's release (the kernel version on Linux)"),
    Field("python_version", _TEXT, "the Python version"),
    Field("app_version", _TEXT, "the bot's version"),
    Field("release", _TEXT, "the bot's release label (SLACKONOS_RELEASE, or git describe)"),
    Field("$process_person_profile", (bool,), "always false: PostHog makes no person profile"),
)
EVENT_FIELDS: dict[str, tuple[Field, ...]] = {
    "startup": (),
    "heartbeat": (
        Field("uptime_hours", _COUNT, "whole hours since the bot started"),
        Field("uptime_days", _COUNT, "whole days since the bot started"),
    ),
    "shutdown": (
        Field("total_runtime_hours", _COUNT, "whole hours the bot ran"),
        Field("total_runtime_days", _COUNT, "whole days the bot ran"),
    ),
}
# What the posthog SDK adds to every event, and we let through.
SDK_FIELDS = (
    Field("$lib", _TEXT, "the SDK's name, posthog-python"),
    Field("$lib_version", _TEXT, "the SDK's version"),
    Field("$geoip_disable", (bool,), "always true: PostHog looks up no place from the address"),
)
# What the SDK would add and we take out: each repeats one of ours (os_platform,
# os_release, python_version), says more about the host than we need, or, `$is_server`,
# is always true and not added by every SDK version we support (7.9 does not).
SDK_DROPPED = (
    "$os",
    "$os_version",
    "$os_distro",
    "$python_runtime",
    "$python_version",
    "$is_server",
)

PROPERTIES: dict[str, dict[str, tuple[type, ...]]] = {
    name: {field.name: field.types for field in (*COMMON_FIELDS, *extra)}
    for name, extra in EVENT_FIELDS.items()
}
SDK_PROPERTIES = frozenset(field.name for field in SDK_FIELDS)


def wire_property_names(event_name: str) -> frozenset[str]:
    """Exactly the properties an event of this name carries on the wire."""
    return frozenset(PROPERTIES[event_name]) | SDK_PROPERTIES


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


def is_canonical_uuid4(value: Any) -> bool:
    """A UUID4 in its canonical form: 36 lower-case characters with hyphens. Anything
    else (a UUID1, which embeds a MAC address, the nil UUID, braces, upper case) is not
    an instance ID and never sent."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == value


class Unsendable(ValueError):
    """An outbox entry that must not be sent, and why (for one log line)."""


def checked_for_wire(entry: Any, instance_id: str | None) -> Event:
    """``entry`` rebuilt with exactly the fields and properties the allowlist allows,
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
    the SDK's that we keep (never, say, ``$release_id`` from the environment)."""
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
