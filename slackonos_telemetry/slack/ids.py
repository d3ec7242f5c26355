"""The identifiers the plugin puts into Slack and looks for in what comes back."""

from __future__ import annotations

# The status message's on/off button.
TOGGLE_ACTION_ID = "slackonos_telemetry_toggle"
TURN_ON = "on"
TURN_OFF = "off"
# The first word of every message that can be a telemetry command.
COMMAND_WORDS = ("telemetry", "setconfig")
