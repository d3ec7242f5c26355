"""Every setting with the place it came from, resolved fresh from env and config file.

Resolution never raises: a value that cannot be understood turns telemetry off
and says why (when in doubt, send nothing), or for tuning values falls back to
the default with a warning.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from slackonos_telemetry.config.keys import (
    API_KEY_KEY,
    DEFAULT_API_KEY,
    DEFAULT_HEARTBEAT_SECONDS,
    DEFAULT_HOST,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DO_NOT_TRACK,
    ENABLED_KEY,
    HOST_KEY,
    MIN_HEARTBEAT_SECONDS,
    SLACKONOS_RELEASE,
    TELEMETRY_API_KEY,
    TELEMETRY_DEBUG,
    TELEMETRY_ENABLED,
    TELEMETRY_HEARTBEAT_SECONDS,
    TELEMETRY_HOST,
    TELEMETRY_SHUTDOWN_TIMEOUT,
)
from slackonos_telemetry.config.store import ConfigReadError, ConfigStore
from slackonos_telemetry.config.words import BOOLEAN_WORDS_TEXT, parse_bool_word

SOURCE_DO_NOT_TRACK = f"env:{DO_NOT_TRACK}"
SOURCE_ENV_ENABLED = f"env:{TELEMETRY_ENABLED}"
SOURCE_CONFIG_ERROR = "config-error"
SOURCE_CONFIG = "config"
SOURCE_DEFAULT = "default"


@dataclass(frozen=True)
class Settings:
    config_path: Path
    enabled: bool
    source: str
    reason: str | None
    api_key: str
    api_key_source: str
    host: str
    host_source: str
    debug: bool
    shutdown_timeout: float
    heartbeat_seconds: float
    release_override: str | None
    config: Mapping[str, Any] = field(default_factory=dict)
    config_error: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def env_overrides_config(self) -> bool:
        """Whether the environment, not the file, decides the enabled state."""
        return self.source in (SOURCE_DO_NOT_TRACK, SOURCE_ENV_ENABLED)


@dataclass
class _Decision:
    enabled: bool
    source: str
    reason: str | None = None


def resolve_settings(config_path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    config_error: str | None = None
    try:
        config = ConfigStore(config_path).read()
    except ConfigReadError as exc:
        config_error = str(exc)

    decision = _decide_enabled(env, config, config_error, config_path)
    api_key, api_key_source, api_key_problem = _resolve_api_key(env, config, config_path)
    host, host_source, host_problem = _resolve_host(env, config, config_path)
    if decision.enabled and api_key_problem:
        decision = _Decision(False, api_key_source, api_key_problem)
    elif decision.enabled and host_problem:
        decision = _Decision(False, host_source, host_problem)

    warnings: list[str] = []
    shutdown_timeout = _number(
        env, TELEMETRY_SHUTDOWN_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, 0.0, warnings
    )
    heartbeat_seconds = _number(
        env, TELEMETRY_HEARTBEAT_SECONDS, DEFAULT_HEARTBEAT_SECONDS, MIN_HEARTBEAT_SECONDS, warnings
    )
    return Settings(
        config_path=config_path,
        enabled=decision.enabled,
        source=decision.source,
        reason=decision.reason,
        api_key=api_key,
        api_key_source=api_key_source,
        host=host,
        host_source=host_source,
        debug=_debug_flag(env),
        shutdown_timeout=shutdown_timeout,
        heartbeat_seconds=heartbeat_seconds,
        release_override=env.get(SLACKONOS_RELEASE, "").strip() or None,
        config=config,
        config_error=config_error,
        warnings=tuple(warnings),
    )


def do_not_track_set(env: Mapping[str, str]) -> bool:
    return env.get(DO_NOT_TRACK, "").strip().lower() not in ("", "0", "false")


def _decide_enabled(
    env: Mapping[str, str],
    config: Mapping[str, Any],
    config_error: str | None,
    config_path: Path,
) -> _Decision:
    if do_not_track_set(env):
        return _Decision(False, SOURCE_DO_NOT_TRACK, f"{DO_NOT_TRACK} is set")
    env_value = env.get(TELEMETRY_ENABLED, "").strip()
    if env_value:
        parsed = parse_bool_word(env_value)
        if parsed is None:
            return _Decision(
                False,
                SOURCE_ENV_ENABLED,
                f"{TELEMETRY_ENABLED}={env_value!r} is not a boolean word "
                f"({BOOLEAN_WORDS_TEXT}); telemetry stays off",
            )
        return _Decision(parsed, SOURCE_ENV_ENABLED)
    if config_error is not None:
        return _Decision(
            False,
            SOURCE_CONFIG_ERROR,
            f"{config_error}; telemetry stays off because an opt-out in it cannot be read",
        )
    if ENABLED_KEY in config:
        value = config[ENABLED_KEY]
        parsed = value if isinstance(value, bool) else _bool_from_text(value)
        if parsed is None:
            return _Decision(
                False,
                SOURCE_CONFIG,
                f"{ENABLED_KEY} in {config_path} is {_shown(value)}, not a boolean "
                f"({BOOLEAN_WORDS_TEXT}); telemetry stays off",
            )
        return _Decision(parsed, SOURCE_CONFIG)
    return _Decision(True, SOURCE_DEFAULT)


def _bool_from_text(value: Any) -> bool | None:
    return parse_bool_word(value) if isinstance(value, str) else None


def _resolve_api_key(
    env: Mapping[str, str], config: Mapping[str, Any], config_path: Path
) -> tuple[str, str, str | None]:
    from_env = env.get(TELEMETRY_API_KEY, "").strip()
    if from_env:
        return from_env, f"env:{TELEMETRY_API_KEY}", None
    if API_KEY_KEY in config:
        value = config[API_KEY_KEY]
        if isinstance(value, str) and value.strip():
            return value.strip(), SOURCE_CONFIG, None
        return (
            "",
            SOURCE_CONFIG,
            (
                f"{API_KEY_KEY} in {config_path} is {_shown(value)}, not a non-empty string; "
                "telemetry stays off"
            ),
        )
    return DEFAULT_API_KEY, SOURCE_DEFAULT, None


def _resolve_host(
    env: Mapping[str, str], config: Mapping[str, Any], config_path: Path
) -> tuple[str, str, str | None]:
    from_env = env.get(TELEMETRY_HOST, "").strip()
    if from_env:
        source = f"env:{TELEMETRY_HOST}"
        problem = _host_problem(from_env)
        return (
            from_env,
            source,
            (f"{TELEMETRY_HOST}={from_env!r} {problem}; telemetry stays off" if problem else None),
        )
    if HOST_KEY in config:
        value = config[HOST_KEY]
        if not isinstance(value, str) or not value.strip():
            return (
                "",
                SOURCE_CONFIG,
                (f"{HOST_KEY} in {config_path} is {_shown(value)}, not a URL; telemetry stays off"),
            )
        problem = _host_problem(value.strip())
        return (
            value.strip(),
            SOURCE_CONFIG,
            (
                f"{HOST_KEY} in {config_path} is {value.strip()!r}, which {problem}; "
                "telemetry stays off"
                if problem
                else None
            ),
        )
    return DEFAULT_HOST, SOURCE_DEFAULT, None


def _host_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https"):
        return "is not an http(s) URL"
    if not hostname:
        return "has no host name"
    return None


def _debug_flag(env: Mapping[str, str]) -> bool:
    value = env.get(TELEMETRY_DEBUG, "").strip()
    # Anything but a clear "no" turns debug on: debug sends nothing, the safe side.
    return bool(value) and parse_bool_word(value) is not False


def _number(
    env: Mapping[str, str], name: str, default: float, minimum: float, warnings: list[str]
) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):
        warnings.append(
            f"{name}={text!r} is not a number of seconds >= {minimum:g}; using {default:g}"
        )
        return default
    return value


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value) if value.strip() else "an empty string"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "an object"
    return str(value)
