"""Shared fixtures: a clean environment and a config file in a temp dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.environment import ENV_NAMES, ENV_PREFIXES


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's telemetry settings or writes in the repo."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES) or name in ENV_NAMES:
            monkeypatch.delenv(name)
    # The first-run notice's grace is tested on its own (see support/environment.py).
    monkeypatch.setenv("TELEMETRY_NOTICE_GRACE_SECONDS", "0")
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "config" / "config.json"
