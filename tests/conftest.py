"""Shared fixtures: a clean environment, a config file in a temp dir, the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ENV_PREFIXES = ("TELEMETRY_", "SLACKONOS_", "SLACK_", "POSTHOG_")
ENV_NAMES = ("DO_NOT_TRACK",)
CLI_TIMEOUT_SECONDS = 30


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without any setting this project reads, plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(ENV_PREFIXES) and name not in ENV_NAMES
    }
    env.update(extra or {})
    return env


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's telemetry settings or writes in the repo."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES) or name in ENV_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "config" / "config.json"


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = CLI_TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[str]:
    """`python -m slackonos_telemetry ARGS` in a clean environment."""
    return subprocess.run(
        [sys.executable, "-m", "slackonos_telemetry", *args],
        env=clean_environ(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
