"""The release label: SLACKONOS_RELEASE, else `git describe`, else "unknown"."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

UNKNOWN = "unknown"
_GIT_TIMEOUT_SECONDS = 2.0


def resolve_release(*overrides: str | None, working_dir: Path | None = None) -> str:
    """The first non-empty override, else `git describe`, else "unknown".

    Never raises. Call it off the bot's main thread: it may start `git`.
    """
    for override in overrides:
        if override:
            return override
    return _git_describe(str(working_dir or Path.cwd()))


@functools.lru_cache(maxsize=8)
def _git_describe(working_dir: str) -> str:
    try:
        result = subprocess.run(
            ["git", "describe", "--tags", "--always"],
            cwd=working_dir,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return UNKNOWN
    label = result.stdout.strip()
    return label if result.returncode == 0 and label else UNKNOWN
