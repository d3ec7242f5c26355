"""What switching telemetry off (or on), or resetting the ID, does, and the words for it:
save the choice, empty the outbox, look at the wire (docs/CONTRACT.md, "Off means off").
Whether telemetry may make and send events is ``consent``'s rule; this module acts on
it and never reads the environment itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slackonos_telemetry.config.keys import ENABLED_KEY
from slackonos_telemetry.telemetry.consent import Decision, decide

if TYPE_CHECKING:
    from slackonos_telemetry.config.settings import Settings
    from slackonos_telemetry.telemetry.outbox import Cleared, Outbox

log = logging.getLogger(__name__)


# -- the act -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What an opt-out, an opt-in or a reset-id did."""

    key: str  # the config key changed
    path: Path  # where it was saved
    previous: Any  # MISSING when there was none
    current: Any
    decision: Decision  # what is in effect after it
    cleared: Cleared | None  # what the outbox held and the wire did

    @property
    def unchanged(self) -> bool:
        return self.previous is self.current

    def lines(self) -> list[str]:
        """The answer, for the CLI and for Slack (which escapes it)."""
        if self.key == ENABLED_KEY:
            word = _shown(self.current)
            if self.unchanged:
                lines = [f"{self.key} is already {word} in {self.path}: nothing changed."]
            else:
                lines = [f"{self.key}: {_shown(self.previous)} -> {word}, saved to {self.path}."]
        else:
            lines = [
                f"New instance ID: {self.current} (was {_shown(self.previous)}), saved to "
                f"{self.path}. The old one is never used again."
            ]
        lines += cleared_lines(self.cleared, retired=self.key != ENABLED_KEY)
        if self.key == ENABLED_KEY:
            lines.append(in_effect_line(self.decision, bool(self.current)))
        return lines


def save_enabled(config_path: Path, enabled: bool, environ: Mapping[str, str]) -> Change:
    """Save ``telemetryEnabled`` (nothing is written when it already holds that value);
    turning it off empties the outbox at once. Raises the store's errors, having changed
    nothing."""
    from slackonos_telemetry.config.settings import MISSING, resolve_settings
    from slackonos_telemetry.config.store import ConfigStore

    before, _ = ConfigStore(config_path).modify(
        lambda current: None if current.get(ENABLED_KEY) is enabled else {ENABLED_KEY: enabled}
    )
    settings = resolve_settings(config_path, environ)
    cleared = None if enabled else discard_waiting(settings)
    return Change(
        ENABLED_KEY,
        config_path,
        before.get(ENABLED_KEY, MISSING),
        enabled,
        decide(settings),
        cleared,
    )


def reset_instance_id(config_path: Path, environ: Mapping[str, str]) -> Change:
    """A new ID; waiting events carry the old one, so they are discarded with it."""
    from slackonos_telemetry.config.keys import INSTANCE_ID_KEY
    from slackonos_telemetry.config.settings import resolve_settings
    from slackonos_telemetry.telemetry.identity import new_instance_id

    settings = resolve_settings(config_path, environ)
    previous, current, where = new_instance_id(settings)
    return Change(
        INSTANCE_ID_KEY, where, previous, current, decide(settings), discard_waiting(settings)
    )


def discard_waiting(
    settings: Settings, outbox: Outbox | None = None, wire_wait: float | None = None
) -> Cleared:
    """Empty the outbox and look at the wire (never raises). What decided it is saved
    first, so even when this fails the gate, asked before every request, stops them."""
    from slackonos_telemetry.telemetry.outbox import WIRE_WAIT_SECONDS, Cleared, Outbox, Wire

    try:
        box = outbox or Outbox(settings.state)
        return box.clear(WIRE_WAIT_SECONDS if wire_wait is None else wire_wait)
    except Exception as exc:  # the opt-out is saved whatever the outbox holds
        log.warning("could not empty the telemetry outbox: %s", exc)
        return Cleared(0, Wire.IDLE, str(exc))


# -- the rendering -----------------------------------------------------------------------


def cleared_lines(cleared: Cleared | None, *, retired: bool = False) -> list[str]:
    """What emptying the outbox did, and what was on the wire meanwhile."""
    from slackonos_telemetry.telemetry.outbox import Wire

    if cleared is None:
        return []
    lines = []
    if cleared.discarded:
        why = "they carried the old ID" if retired else "they will never be sent"
        lines.append(f"Discarded {cleared.discarded} waiting event(s): {why}.")
    if cleared.problem:
        lines.append(
            f"The outbox could not be emptied ({cleared.problem}); nothing in it will be sent."
        )
    if cleared.wire is Wire.FINISHED:
        lines.append(
            "One request was already on the wire when this was saved; it finished, so its "
            "events (made before) may have reached PostHog. Nothing else will be sent."
        )
    elif cleared.wire is Wire.BUSY:
        lines.append(
            "One request is still on the wire from before this was saved: its events may "
            "still reach PostHog. Nothing else will be sent."
        )
    return lines


def in_effect_line(decision: Decision, saved: bool) -> str:
    state = "on" if decision.enabled else "off"
    if decision.enabled == saved:
        return f"Telemetry is now {state}."
    if decision.env_overrides_config and decision.source.variable:
        return (
            f"Note: {decision.source.variable} in the bot's environment overrides the file: "
            f"telemetry stays {state}."
        )
    return f"Note: telemetry stays {state}: {decision.reason or decision.source}."


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return repr(value) if value is not None else "(none)"
