"""Events as the tests make them and read them back (docs/CONTRACT.md, "Events on the
wire"): what every event carries, uuids and times, and events made the way a bot makes
them, to put in an outbox."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from slackonos_telemetry.telemetry.events import Event, RuntimeFacts, make_event
from tests.support.capture import CaptureServer

# docs/CONTRACT.md, "Events on the wire": the properties of every event, and of each
# event besides.
COMMON_PROPERTIES = frozenset(
    {
        "instance_id",
        "os_platform",
        "os_release",
        "python_version",
        "app_version",
        "release",
        "$process_person_profile",
    }
)
EVENT_PROPERTIES = {
    "startup": COMMON_PROPERTIES,
    "heartbeat": COMMON_PROPERTIES | {"uptime_hours", "uptime_days"},
    "shutdown": COMMON_PROPERTIES | {"total_runtime_hours", "total_runtime_days"},
}
# The SDK's own properties that go on the wire (docs/TELEMETRY.md): the only others.
SDK_PROPERTIES = frozenset({"$lib", "$lib_version", "$geoip_disable"})
EVENT_KEYS = frozenset({"event", "distinct_id", "uuid", "timestamp", "properties"})


def made(
    count: int,
    instance_id: str,
    name: str = "heartbeat",
    *,
    release: str = "test",
    hours_apart: bool = True,
) -> list[Event]:
    """``count`` events as a bot makes them (heartbeats an hour of uptime apart, unless
    ``hours_apart`` is false), oldest first."""
    facts = RuntimeFacts.gather("1.0", release)
    step = 3600.0 if hours_apart else 1.0
    return [make_event(name, instance_id, facts, step * n) for n in range(count)]


def uuids_of(events: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(event.get("uuid")) for event in events]


def uuid_counts(server: CaptureServer) -> Counter[str]:
    """How many times each uuid was accepted."""
    return Counter(uuids_of(server.events))


def requested_uuids(server: CaptureServer) -> Counter[str]:
    """How many requests carried each uuid, whatever the answer was."""
    return Counter(uuid for record in server.requests for uuid in uuids_of(record.events))


def is_uuid4(value: Any) -> bool:
    """A canonical, lower-case UUID4."""
    try:
        parsed = uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return False
    return parsed is not None and parsed.version == 4 and str(parsed) == value


def assert_uuid4(value: Any) -> None:
    assert isinstance(value, str), value
    parsed = uuid.UUID(value)
    assert str(parsed) == value.lower(), value
    assert parsed.version == 4, value


def parse_utc(value: Any) -> datetime:
    """An ISO 8601 timestamp that names UTC (offset zero)."""
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


def own_properties(event: Mapping[str, Any]) -> dict[str, Any]:
    """An event's properties without those the SDK adds by itself."""
    properties = event["properties"]
    return {key: value for key, value in properties.items() if key not in SDK_PROPERTIES}


def word_in(word: str, text: str) -> bool:
    """``word`` appears in ``text`` as a whole token (not inside a longer word)."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", text) is not None
