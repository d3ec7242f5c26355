"""What telemetry collects, what it never collects, and how to turn it off.

One text for the README, the CLI, the Slack status and the first-run notice,
so that what a user reads is what the code does.
"""

from __future__ import annotations

COLLECTED = (
    "a random instance ID (no link to your workspace)",
    "the events startup, a daily heartbeat and shutdown",
    "whole hours and days of uptime",
    "OS platform and release, Python version",
    "app version and release",
)

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
