"""The names a user types: config keys, environment variables, and their defaults
(docs/CONTRACT.md, "The config file" and "Settings")."""

from __future__ import annotations

# Keys the plugin owns in the shared config file.
ENABLED_KEY = "telemetryEnabled"
API_KEY_KEY = "telemetryApiKey"
HOST_KEY = "telemetryHost"
INSTANCE_ID_KEY = "telemetryInstanceId"
NOTICE_SHOWN_KEY = "telemetryNoticeShown"
OWNED_KEYS = (ENABLED_KEY, API_KEY_KEY, HOST_KEY, INSTANCE_ID_KEY, NOTICE_SHOWN_KEY)
# A key the plugin reads and never writes.
ADMIN_CHANNEL_KEY = "adminChannel"
DEFAULT_ADMIN_CHANNEL = "music-admin"

# The environment.
CONFIG_ENV_VAR = "SLACKONOS_CONFIG"
DO_NOT_TRACK = "DO_NOT_TRACK"
TELEMETRY_ENABLED = "TELEMETRY_ENABLED"
CI = "CI"
TELEMETRY_API_KEY = "TELEMETRY_API_KEY"
TELEMETRY_HOST = "TELEMETRY_HOST"
TELEMETRY_DEBUG = "TELEMETRY_DEBUG"
TELEMETRY_SHUTDOWN_TIMEOUT = "TELEMETRY_SHUTDOWN_TIMEOUT"
TELEMETRY_HEARTBEAT_SECONDS = "TELEMETRY_HEARTBEAT_SECONDS"
TELEMETRY_NOTICE_GRACE_SECONDS = "TELEMETRY_NOTICE_GRACE_SECONDS"
TELEMETRY_STATE_DIR = "TELEMETRY_STATE_DIR"
SLACKONOS_RELEASE = "SLACKONOS_RELEASE"

# The SlackONOS project's public, write-only PostHog key: it can send events, not read them.
DEFAULT_API_KEY = "phc_dkh7jm9oxMh7lLKr8TRBY0eKQ5Jn708pXk9McRC0qlO"
DEFAULT_HOST = "https://us.i.posthog.com"
DEFAULT_SHUTDOWN_TIMEOUT = 2.0
DEFAULT_HEARTBEAT_SECONDS = 86400.0
MIN_HEARTBEAT_SECONDS = 1.0
DEFAULT_NOTICE_GRACE_SECONDS = 3600.0
