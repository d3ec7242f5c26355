"""The words a person types for yes and no, and numbers of seconds from the environment.

A leaf of the config layer, light enough for ``register()``'s path.
"""

from __future__ import annotations

from collections.abc import Mapping

from slackonos_telemetry.config.keys import DEFAULT_SHUTDOWN_TIMEOUT, TELEMETRY_SHUTDOWN_TIMEOUT

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
