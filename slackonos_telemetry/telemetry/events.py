"""The three events and their properties, exactly as they are handed to the SDK.

Nothing here names a host, a user, a channel, a path or a token: the only
identifier is the random instance ID.
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

STARTUP = "startup"
HEARTBEAT = "heartbeat"
SHUTDOWN = "shutdown"
EVENT_NAMES = (STARTUP, HEARTBEAT, SHUTDOWN)

SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86400


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
    name: str,
    instance_id: str,
    facts: RuntimeFacts,
    seconds_running: float = 0.0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A new event with its own uuid and creation time, kept through every retry."""
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
    if name == HEARTBEAT:
        properties.update(uptime_hours=whole_hours, uptime_days=whole_days)
    elif name == SHUTDOWN:
        properties.update(total_runtime_hours=whole_hours, total_runtime_days=whole_days)
    elif name != STARTUP:
        raise ValueError(f"unknown event {name!r}; expected one of {', '.join(EVENT_NAMES)}")
    return {
        "event": name,
        "distinct_id": instance_id,
        "uuid": str(uuid.uuid4()),
        "timestamp": (now or datetime.now(timezone.utc)).isoformat(),
        "properties": properties,
    }


def is_sendable(event: Any) -> bool:
    """Whether an outbox entry has what a send needs; anything else is dropped."""
    if not isinstance(event, dict) or not isinstance(event.get("properties"), dict):
        return False
    fields = ("event", "distinct_id", "uuid", "timestamp")
    if not all(isinstance(event.get(name), str) and event[name] for name in fields):
        return False
    try:
        uuid.UUID(event["uuid"])
    except ValueError:
        return False
    return True
