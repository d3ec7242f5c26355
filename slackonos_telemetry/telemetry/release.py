"""The release label: SLACKONOS_RELEASE, else `git describe`, else "unknown"."""

from __future__ import annotations

import codecs
import functools
import locale
import subprocess
from pathlib import Path

from slackonos_telemetry.telemetry.threads import host_signals_let_through

UNKNOWN = "unknown"
_GIT_TIMEOUT_SECONDS = 2.0
# `git describe`'s output is decoded with the locale's codec, which Python imports on first
# use: imported with this module instead, never mid-run on a thread of ours.
codecs.lookup(locale.getpreferredencoding(False))


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
        with host_signals_let_through():  # git stays stoppable by Ctrl-C and SIGTERM
            git = subprocess.Popen(
                ["git", "describe", "--tags", "--always"],
                cwd=working_dir,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        with git:
            try:
                output, _ = git.communicate(timeout=_GIT_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                git.kill()
                return UNKNOWN
    except (OSError, subprocess.SubprocessError, ValueError):
        return UNKNOWN
    label = output.strip()
    return label if git.returncode == 0 and label else UNKNOWN
