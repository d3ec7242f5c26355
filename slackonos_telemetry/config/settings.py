"""Every setting with the place it came from, resolved fresh from the environment and the
config file (SPEC section 3).

Resolution never raises: a value that cannot be understood turns telemetry off
and says why (when in doubt, send nothing), or for tuning values falls back to
the default with a warning.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from slackonos_telemetry.config.jsonfile import describe_json_value
from slackonos_telemetry.config.keys import (
    API_KEY_KEY,
    CI,
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
from slackonos_telemetry.config.redact import shown_url
from slackonos_telemetry.config.store import ConfigReadError, ConfigStore
from slackonos_telemetry.config.words import (
    BOOLEAN_WORDS_TEXT,
    ci_says_true,
    do_not_track,
    parse_bool_word,
    seconds_from_env,
)


class Source(str, enum.Enum):
    """Where a setting's value came from, as ``status`` shows it."""

    DO_NOT_TRACK = f"env:{DO_NOT_TRACK}"
    ENV_ENABLED = f"env:{TELEMETRY_ENABLED}"
    CONFIG_ERROR = "config-error"
    CONFIG = "config"
    CI = f"env:{CI}"
    ENV_API_KEY = f"env:{TELEMETRY_API_KEY}"
    ENV_HOST = f"env:{TELEMETRY_HOST}"
    DEFAULT = "default"

    def __str__(self) -> str:
        return self.value

    @property
    def variable(self) -> str | None:
        """The environment variable this source names, if it is one."""
        return self.value.removeprefix("env:") if self.value.startswith("env:") else None


@dataclass(frozen=True)
class Settings:
    """Everything that decides what telemetry does now, each value with its source.

    ``enabled`` is False with a ``reason`` whenever a value could not be
    understood. ``host`` may hold a user name and password: show ``host_shown``.
    """

    config_path: Path
    enabled: bool
    source: Source
    reason: str | None
    api_key: str
    api_key_source: Source
    host: str
    host_source: Source
    debug: bool
    shutdown_timeout: float
    heartbeat_seconds: float
    release_override: str | None
    warnings: tuple[str, ...] = ()

    @property
    def host_shown(self) -> str:
        return shown_url(self.host) if self.host else "(none)"

    @property
    def env_overrides_config(self) -> bool:
        """Whether the environment, not the file, decides the enabled state."""
        return self.source in (Source.DO_NOT_TRACK, Source.ENV_ENABLED)


@dataclass(frozen=True)
class _Decision:
    enabled: bool
    source: Source
    reason: str | None = None


def resolve_settings(config_path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings now, from ``environ`` (default: os.environ) and the config file.
    Reads the file (once per change: parses are cached); never writes, never raises."""
    env = os.environ if environ is None else environ
    config: Mapping[str, Any] = {}
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
    shutdown_timeout = seconds_from_env(
        env, TELEMETRY_SHUTDOWN_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, 0.0, warnings
    )
    heartbeat_seconds = seconds_from_env(
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
        debug=debug_requested(env),
        shutdown_timeout=shutdown_timeout,
        heartbeat_seconds=heartbeat_seconds,
        release_override=env.get(SLACKONOS_RELEASE, "").strip() or None,
        warnings=tuple(warnings),
    )


def debug_requested(env: Mapping[str, str]) -> bool:
    value = env.get(TELEMETRY_DEBUG, "").strip()
    # Anything but a clear "no" turns debug on: debug sends nothing, the safe side.
    return bool(value) and parse_bool_word(value) is not False


def _decide_enabled(
    env: Mapping[str, str],
    config: Mapping[str, Any],
    config_error: str | None,
    config_path: Path,
) -> _Decision:
    if do_not_track(env):
        return _Decision(False, Source.DO_NOT_TRACK, f"{DO_NOT_TRACK} is set")
    env_value = env.get(TELEMETRY_ENABLED, "").strip()
    if env_value:
        parsed = parse_bool_word(env_value)
        if parsed is None:
            return _Decision(
                False,
                Source.ENV_ENABLED,
                f"{TELEMETRY_ENABLED}={env_value!r} is not a boolean word "
                f"({BOOLEAN_WORDS_TEXT}); telemetry stays off",
            )
        return _Decision(parsed, Source.ENV_ENABLED)
    if config_error is not None:
        return _Decision(
            False,
            Source.CONFIG_ERROR,
            f"{config_error}; telemetry stays off because an opt-out in it cannot be read",
        )
    if ENABLED_KEY in config:
        value = config[ENABLED_KEY]
        parsed = value if isinstance(value, bool) else _bool_from_text(value)
        if parsed is None:
            return _Decision(
                False,
                Source.CONFIG,
                f"{ENABLED_KEY} in {config_path} is {describe_json_value(value)}, not a "
                f"boolean ({BOOLEAN_WORDS_TEXT}); telemetry stays off",
            )
        return _Decision(parsed, Source.CONFIG)
    if ci_says_true(env):
        return _Decision(
            False,
            Source.CI,
            f"{CI} is set: a test run is not counted (set {TELEMETRY_ENABLED}=true to count it)",
        )
    return _Decision(True, Source.DEFAULT)


def _bool_from_text(value: Any) -> bool | None:
    return parse_bool_word(value) if isinstance(value, str) else None


def _resolve_api_key(
    env: Mapping[str, str], config: Mapping[str, Any], config_path: Path
) -> tuple[str, Source, str | None]:
    from_env = env.get(TELEMETRY_API_KEY, "").strip()
    if from_env:
        return from_env, Source.ENV_API_KEY, None
    if API_KEY_KEY in config:
        value = config[API_KEY_KEY]
        if isinstance(value, str) and value.strip():
            return value.strip(), Source.CONFIG, None
        return (
            "",
            Source.CONFIG,
            f"{API_KEY_KEY} in {config_path} is {describe_json_value(value)}, not a non-empty "
            "string; telemetry stays off",
        )
    return DEFAULT_API_KEY, Source.DEFAULT, None


def _resolve_host(
    env: Mapping[str, str], config: Mapping[str, Any], config_path: Path
) -> tuple[str, Source, str | None]:
    from_env = env.get(TELEMETRY_HOST, "").strip()
    if from_env:
        problem = _host_problem(from_env)
        return (
            from_env,
            Source.ENV_HOST,
            f"{TELEMETRY_HOST}={shown_url(from_env)!r} {problem}; telemetry stays off"
            if problem
            else None,
        )
    if HOST_KEY in config:
        value = config[HOST_KEY]
        if not isinstance(value, str) or not value.strip():
            return (
                "",
                Source.CONFIG,
                f"{HOST_KEY} in {config_path} is {describe_json_value(value)}, not a URL; "
                "telemetry stays off",
            )
        problem = _host_problem(value.strip())
        return (
            value.strip(),
            Source.CONFIG,
            f"{HOST_KEY} in {config_path} is {shown_url(value.strip())!r}, which {problem}; "
            "telemetry stays off"
            if problem
            else None,
        )
    return DEFAULT_HOST, Source.DEFAULT, None


def _host_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https"):
        return "is not an http(s) URL"
    if not hostname:
        return "has no host name"
    return None
