"""What telemetry collects, what it never collects, and how to turn it off, in the words
every disclosure uses: the first-run notice, ``status`` (CLI and Slack), the docs and the
README. What is collected is made from the allowlist the sender checks (``events.py``),
so what a person reads is what goes on the wire; a test holds the docs to it too.
"""

from __future__ import annotations

from slackonos_telemetry.telemetry.events import COMMON_FIELDS, EVENT_FIELDS, SDK_FIELDS

EVENTS_SENT = "startup (once per start), heartbeat (every 24 h by default) and shutdown"

NOT_COLLECTED = (
    "no hostnames, IP addresses (GeoIP is off) or paths",
    "no Slack users, channels, messages or tokens",
    "no music, speakers or queue contents",
)

HOW_TO_DISABLE = (
    "in Slack (admin channel): setconfig telemetryEnabled false",
    "in the environment: TELEMETRY_ENABLED=false",
    'in the config file: "telemetryEnabled": false',
    "any tool that honours it: DO_NOT_TRACK=1",
)


def collected_names() -> str:
    """One line naming every property sent, for the notice and the status."""
    common = ", ".join(field.name for field in COMMON_FIELDS)
    extras = "; ".join(
        f"{name} adds {', '.join(field.name for field in extra)}"
        for name, extra in EVENT_FIELDS.items()
        if extra
    )
    sdk = ", ".join(field.name for field in SDK_FIELDS)
    return f"the events {EVENTS_SENT}, each with {common}; {extras}; the SDK adds {sdk}"
