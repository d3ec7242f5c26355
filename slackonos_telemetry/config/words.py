"""The words a person types for yes and no, and what the environment says about telemetry.

A leaf of the config layer: ``register()`` uses ``environment_disables`` on the
host's main thread, so this imports nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping

from slackonos_telemetry.config.keys import (
    CI,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DO_NOT_TRACK,
    TELEMETRY_ENABLED,
    TELEMETRY_SHUTDOWN_TIMEOUT,
)

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
BOOLEAN_WORDS_TEXT = "true/false, yes/no, on/off, 1/0"


def parse_bool_word(text: str) -> bool | None:
    """True or False for a boolean word (any case, spaces ignored), else None."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def do_not_track(env: Mapping[str, str]) -> bool:
    """DO_NOT_TRACK set to anything but empty, 0 or false (consoledonottrack.com)."""
    return env.get(DO_NOT_TRACK, "").strip().lower() not in ("", "0", "false")


def ci_says_true(env: Mapping[str, str]) -> bool:
    """CI set to a true word, as every CI service sets it."""
    return parse_bool_word(env.get(CI, "")) is True


def environment_disables(env: Mapping[str, str]) -> bool:
    """Whether the environment alone turns telemetry off, whatever the config file says:
    DO_NOT_TRACK, or TELEMETRY_ENABLED set to anything but a true word. (The full
    decision, with its reasons, is ``resolve_settings``; this is the same rule.)"""
    if do_not_track(env):
        return True
    word = env.get(TELEMETRY_ENABLED, "").strip()
    return bool(word) and parse_bool_word(word) is not True


def seconds_from_env(
    env: Mapping[str, str],
    name: str,
    default: float,
    minimum: float = 0.0,
    warnings: list[str] | None = None,
) -> float:
    """A number of seconds from ``env[name]``: the default (with a warning) when it is
    not a finite number >= ``minimum``."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):
        if warnings is not None:
            warnings.append(
                f"{name}={text!r} is not a number of seconds >= {minimum:g}; using {default:g}"
            )
        return default
    return value


def shutdown_timeout_from(env: Mapping[str, str]) -> float:
    """TELEMETRY_SHUTDOWN_TIMEOUT: how long the whole process's shutdown may take."""
    return seconds_from_env(env, TELEMETRY_SHUTDOWN_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT)
