"""A clean environment for everything the tests and the bench start."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
# Everything the plugin (or the SDK) reads: no test sees the developer's settings.
ENV_PREFIXES = ("TELEMETRY_", "SLACKONOS_", "SLACK_", "POSTHOG_")
ENV_NAMES = ("DO_NOT_TRACK", "CI")


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without any setting this project reads, plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(ENV_PREFIXES) and name not in ENV_NAMES
    }
    # The first-run notice's grace (an hour by default) is tested on its own; elsewhere it
    # would hold every event of a bot whose notice was just posted.
    env["TELEMETRY_NOTICE_GRACE_SECONDS"] = "0"
    # Output into a pipe block-buffered, as a user's shell has it (this machine sets
    # PYTHONUNBUFFERED; a clean venv, as dist-check runs the suite, does not).
    env.pop("PYTHONUNBUFFERED", None)
    env.update(extra or {})
    return env
