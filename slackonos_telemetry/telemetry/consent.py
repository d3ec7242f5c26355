"""Whether telemetry may make and send events: the one home of that rule
(docs/CONTRACT.md, "Settings" and "Off means off").

- The rule (``decide``): the first match wins: DO_NOT_TRACK; TELEMETRY_ENABLED; a config
  file that cannot be read; ``telemetryEnabled`` in it; CI; on by default. A clear no
  is an opt-out (OFF). A value that cannot be understood (a config caught mid-rewrite,
  ``telemetryEnabled: "maybe"``, an unusable key or host) is no consent (WITHHELD):
  nothing is made or sent, and nothing waiting is discarded, since the person may have
  meant yes. A test run (CI) is withheld too: it is not counted, and it discards no
  real run's events.
- The gate (``hold``): the one question every send path asks under the outbox lock,
  right before a request: may one start now, and if not, why.

What switching off does (save, empty the outbox, look at the wire) is ``opt_out``'s.
``register()`` imports this module on the host's thread: its records are plain classes
(a dataclass or NamedTuple costs the host's start about half a millisecond each to
build; bench figure 7).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timezone
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

log = logging.getLogger(__name__)


class Consent(enum.Enum):
    ON = "on"
    OFF = "off"  # a clear no: waiting events are discarded
    WITHHELD = "withheld"  # not understood: nothing made or sent, nothing discarded


class Decision:
    """What the rule decided, and from what."""

    def __init__(self, consent: Consent, source: Source, reason: str | None = None) -> None:
        self.consent = consent
        self.source = source
        self.reason = reason

    @property
    def enabled(self) -> bool:
        return self.consent is Consent.ON

    @property
    def env_overrides_config(self) -> bool:
        """Whether the environment, not the file, decides."""
        return self.source.value in (f"env:{DO_NOT_TRACK}", f"env:{TELEMETRY_ENABLED}")


# -- the rule ----------------------------------------------------------------------------


def environment_decides(env: Mapping[str, str]) -> Consent | None:
    """What the environment alone decides, whatever the file says (cheap: for
    ``register()``), or None when it leaves it to the file. ``decide``'s first two steps."""
    if _do_not_track(env):
        return Consent.OFF
    word = env.get(TELEMETRY_ENABLED, "").strip()
    if not word:
        return None
    parsed = parse_bool_word(word)
    if parsed is None:
        return Consent.WITHHELD
    return Consent.ON if parsed else Consent.OFF


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


class Hold:
    """Why no request may start now."""

    def __init__(self, kind: HoldKind, detail: str, until: float | None = None) -> None:
        self.kind = kind
        self.detail = detail
        self.until = until  # wall clock, when the hold ends by itself

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


def describe(decision: Decision) -> str:
    """One line: the state and where it comes from."""
    state = {Consent.ON: "enabled", Consent.OFF: "disabled", Consent.WITHHELD: "withheld"}
    return f"{state[decision.consent]} (source: {decision.source})"
