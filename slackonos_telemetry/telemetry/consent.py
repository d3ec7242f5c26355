"""Whether telemetry may make and send events, and what switching it off does: the one
home of that rule (docs/CONTRACT.md, "Settings" and "Off means off").

- The rule (``decide``): the first match wins: DO_NOT_TRACK; TELEMETRY_ENABLED; a config
  file that cannot be read; ``telemetryEnabled`` in it; CI; on by default. A clear no
  is an opt-out (OFF). A value that cannot be understood (a config caught mid-rewrite,
  ``telemetryEnabled: "maybe"``, an unusable key or host) is no consent (WITHHELD):
  nothing is made or sent, and nothing waiting is discarded, since the person may have
  meant yes. A test run (CI) is withheld too: it is not counted, and it discards no
  real run's events.
- The gate (``hold``): the one question every send path asks under the outbox lock,
  right before a request: may one start now, and if not, why.
- The act (``save_enabled``, ``reset_instance_id``, ``discard_waiting``): save, empty
  the outbox, look at the wire.
- The rendering (``Change.lines``, ``describe``): the words the CLI prints and Slack
  posts.

``register()`` imports this module on the host's thread: the act's parts are loaded
inside the functions that need them.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slackonos_telemetry.config.keys import (
    CI,
    DO_NOT_TRACK,
    ENABLED_KEY,
    TELEMETRY_ENABLED,
    TELEMETRY_NOTICE_GRACE_SECONDS,
)
from slackonos_telemetry.config.words import BOOLEAN_WORDS_TEXT, parse_bool_word

if TYPE_CHECKING:
    from slackonos_telemetry.config.settings import Settings, Source
    from slackonos_telemetry.telemetry.outbox import Cleared, Outbox

log = logging.getLogger(__name__)


class Consent(enum.Enum):
    ON = "on"
    OFF = "off"  # a clear no: waiting events are discarded
    WITHHELD = "withheld"  # not understood: nothing made or sent, nothing discarded


@dataclass(frozen=True)
class Decision:
    consent: Consent
    source: Source
    reason: str | None = None

    @property
    def enabled(self) -> bool:
        return self.consent is Consent.ON

    @property
    def env_overrides_config(self) -> bool:
        """Whether the environment, not the file, decides."""
        return self.source.value in (f"env:{DO_NOT_TRACK}", f"env:{TELEMETRY_ENABLED}")


# -- the rule ----------------------------------------------------------------------------


def environment_says_off(env: Mapping[str, str]) -> bool:
    """Whether the environment alone turns telemetry off, whatever the file says (cheap:
    for ``register()``). The same rule as ``decide``, its first two steps."""
    if _do_not_track(env):
        return True
    word = env.get(TELEMETRY_ENABLED, "").strip()
    return bool(word) and parse_bool_word(word) is not True


def decide(settings: Settings) -> Decision:
    from slackonos_telemetry.config.jsonfile import describe_json_value
    from slackonos_telemetry.config.settings import MISSING, Source

    env = settings.environ
    if _do_not_track(env):
        return Decision(Consent.OFF, Source.DO_NOT_TRACK, f"{DO_NOT_TRACK} is set")
    word = env.get(TELEMETRY_ENABLED, "").strip()
    if word:
        parsed = parse_bool_word(word)
        if parsed is None:
            return Decision(
                Consent.WITHHELD,
                Source.ENV_ENABLED,
                f"{TELEMETRY_ENABLED}={word!r} is not a boolean word ({BOOLEAN_WORDS_TEXT}); "
                "nothing is sent",
            )
        decision = Decision(Consent.ON if parsed else Consent.OFF, Source.ENV_ENABLED)
    elif settings.config_error is not None:
        return Decision(
            Consent.WITHHELD,
            Source.CONFIG_ERROR,
            f"{settings.config_error}; nothing is sent while an opt-out in it cannot be read",
        )
    elif settings.config_enabled is not MISSING:
        value = settings.config_enabled
        parsed = value if isinstance(value, bool) else _word(value)
        if parsed is None:
            return Decision(
                Consent.WITHHELD,
                Source.CONFIG,
                f"{ENABLED_KEY} in {settings.config_path} is {describe_json_value(value)}, not "
                f"a boolean ({BOOLEAN_WORDS_TEXT}); nothing is sent",
            )
        decision = Decision(Consent.ON if parsed else Consent.OFF, Source.CONFIG)
    elif parse_bool_word(env.get(CI, "")) is True:
        return Decision(
            Consent.WITHHELD,
            Source.CI,
            f"{CI} is set: a test run is not counted (set {TELEMETRY_ENABLED}=true to count it)",
        )
    else:
        decision = Decision(Consent.ON, Source.DEFAULT)
    if decision.enabled and settings.api_key_problem:
        return Decision(
            Consent.WITHHELD,
            settings.api_key_source,
            f"{settings.api_key_problem}; nothing is sent",
        )
    if decision.enabled and settings.host_problem:
        return Decision(
            Consent.WITHHELD, settings.host_source, f"{settings.host_problem}; nothing is sent"
        )
    return decision


def _do_not_track(env: Mapping[str, str]) -> bool:
    # consoledonottrack.com: anything but empty, 0 or false.
    return env.get(DO_NOT_TRACK, "").strip().lower() not in ("", "0", "false")


def _word(value: Any) -> bool | None:
    return parse_bool_word(value) if isinstance(value, str) else None


# -- the gate ----------------------------------------------------------------------------


class HoldKind(enum.Enum):
    OFF = "telemetry is off"
    WITHHELD = "telemetry is withheld"
    DEBUG = "debug mode sends nothing"
    NOTICE = "the first-run notice's grace"


@dataclass(frozen=True)
class Hold:
    """Why no request may start now."""

    kind: HoldKind
    detail: str
    until: float | None = None  # wall clock, when the hold ends by itself

    def __str__(self) -> str:
        return self.detail


def hold(settings: Settings, meta: Mapping[str, Any], now: float | None = None) -> Hold | None:
    """None when a request may start now; else why not. ``meta``: the outbox's."""
    decision = decide(settings)
    if decision.consent is Consent.OFF:
        return Hold(HoldKind.OFF, f"telemetry is off ({decision.source})")
    if decision.consent is Consent.WITHHELD:
        return Hold(HoldKind.WITHHELD, f"withheld ({decision.source}): {decision.reason}")
    if settings.debug:
        return Hold(HoldKind.DEBUG, "TELEMETRY_DEBUG is on: payloads are printed, not sent")
    until = first_send_at(settings, meta)
    if until is not None and (time.time() if now is None else now) < until:
        return Hold(HoldKind.NOTICE, f"nothing leaves before {_when(until)}", until)
    return None


def first_send_at(settings: Settings, meta: Mapping[str, Any]) -> float | None:
    """When the first-run notice's grace ends (wall clock), if a notice went up."""
    posted = meta.get("noticePostedAt")
    if not isinstance(posted, (int, float)) or isinstance(posted, bool):
        return None
    return float(posted) + settings.notice_grace_seconds


def grace_text(settings: Settings, meta: Mapping[str, Any]) -> str | None:
    """What the notice and ``status`` say about the first send, while it waits."""
    until = first_send_at(settings, meta)
    if until is None or time.time() >= until:
        return None
    return (
        f"Nothing has been sent yet: the first events leave at {_when(until)} "
        f"({TELEMETRY_NOTICE_GRACE_SECONDS}={settings.notice_grace_seconds:g} s after this "
        "notice), unless telemetry is switched off before; then nothing about this bot is "
        "ever sent."
    )


def _when(wall: float) -> str:
    return datetime.fromtimestamp(wall, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


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


def describe(decision: Decision) -> str:
    """One line: the state and where it comes from."""
    state = {Consent.ON: "enabled", Consent.OFF: "disabled", Consent.WITHHELD: "withheld"}
    return f"{state[decision.consent]} (source: {decision.source})"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return repr(value) if value is not None else "(none)"
