"""Every setting with the place it came from, read fresh from the environment and the
config file (docs/CONTRACT.md, "Settings").

Reading never raises: a value that cannot be understood is kept with the problem
named (``telemetry.consent`` then sends nothing), or, for tuning values, falls back to
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
    DEFAULT_NOTICE_GRACE_SECONDS,
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
    TELEMETRY_NOTICE_GRACE_SECONDS,
    TELEMETRY_SHUTDOWN_TIMEOUT,
)
from slackonos_telemetry.config.paths import StatePlace, state_place
from slackonos_telemetry.config.redact import shown_url
from slackonos_telemetry.config.store import ConfigReadError, ConfigStore
from slackonos_telemetry.config.words import parse_bool_word, seconds_from_env


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


class _Missing:
    def __repr__(self) -> str:
        return "(not set)"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Settings:
    """What the environment and the config file say now, each value with its source.

    These are readings: whether telemetry may send is decided from them by
    ``telemetry.consent``, the one place that rule lives. ``host`` may hold a user name
    and password: show ``host_shown``.
    """

    config_path: Path
    environ: Mapping[str, str]  # the environment the readings came from
    config_error: str | None  # why the config file cannot be read (an opt-out may hide in it)
    config_enabled: Any  # the file's telemetryEnabled as written, MISSING when absent
    api_key: str
    api_key_source: Source
    api_key_problem: str | None
    host: str
    host_source: Source
    host_problem: str | None
    debug: bool
    shutdown_timeout: float
    heartbeat_seconds: float
    notice_grace_seconds: float
    release_override: str | None
    state: StatePlace
    warnings: tuple[str, ...] = ()

    @property
    def host_shown(self) -> str:
        return shown_url(self.host) if self.host else "(none)"


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

    api_key, api_key_source, api_key_problem = _resolve_api_key(env, config, config_path)
    host, host_source, host_problem = _resolve_host(env, config, config_path)
    warnings: list[str] = []
    shutdown_timeout = seconds_from_env(
        env, TELEMETRY_SHUTDOWN_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, 0.0, warnings
    )
    heartbeat_seconds = seconds_from_env(
        env, TELEMETRY_HEARTBEAT_SECONDS, DEFAULT_HEARTBEAT_SECONDS, MIN_HEARTBEAT_SECONDS, warnings
    )
    notice_grace = seconds_from_env(
        env, TELEMETRY_NOTICE_GRACE_SECONDS, DEFAULT_NOTICE_GRACE_SECONDS, 0.0, warnings
    )
    return Settings(
        config_path=config_path,
        environ=env,
        config_error=config_error,
        config_enabled=config.get(ENABLED_KEY, MISSING),
        api_key=api_key,
        api_key_source=api_key_source,
        api_key_problem=api_key_problem,
        host=host,
        host_source=host_source,
        host_problem=host_problem,
        debug=debug_requested(env),
        shutdown_timeout=shutdown_timeout,
        heartbeat_seconds=heartbeat_seconds,
        notice_grace_seconds=notice_grace,
        release_override=env.get(SLACKONOS_RELEASE, "").strip() or None,
        state=state_place(config_path, env),
        warnings=tuple(warnings),
    )


def debug_requested(env: Mapping[str, str]) -> bool:
    value = env.get(TELEMETRY_DEBUG, "").strip()
    # Anything but a clear "no" turns debug on: debug sends nothing, the safe side.
    return bool(value) and parse_bool_word(value) is not False


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
            "string",
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
            f"{TELEMETRY_HOST}={shown_url(from_env)!r} {problem}" if problem else None,
        )
    if HOST_KEY in config:
        value = config[HOST_KEY]
        if not isinstance(value, str) or not value.strip():
            return (
                "",
                Source.CONFIG,
                f"{HOST_KEY} in {config_path} is {describe_json_value(value)}, not a URL",
            )
        problem = _host_problem(value.strip())
        return (
            value.strip(),
            Source.CONFIG,
            f"{HOST_KEY} in {config_path} is {shown_url(value.strip())!r}, which {problem}"
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
