"""Where the config file is: the explicit path, else SLACKONOS_CONFIG, else ./config/config.json."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from slackonos_telemetry.config.keys import CONFIG_ENV_VAR

DEFAULT_RELATIVE_PATH = Path("config") / "config.json"
OUTBOX_FILE_NAME = "telemetry-outbox.json"


def resolve_config_path(
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Path:
    """Absolute, against ``cwd`` (default: the working directory now), so a later
    chdir by the host cannot move the file under us."""
    env = os.environ if environ is None else environ
    chosen = explicit if explicit else env.get(CONFIG_ENV_VAR) or None
    path = Path(chosen) if chosen else DEFAULT_RELATIVE_PATH
    return Path(os.path.normpath(os.path.join(cwd or os.getcwd(), path)))


_separate_state: Path | None = None


def keep_state_in(folder: Path | None) -> None:
    """Keep this process's telemetry state (outbox, instance session, their locks) in
    ``folder`` instead of beside the config file; None puts it back. For the local
    console's demo: it must never deliver a real run's waiting events to its stand-in,
    join a running bot's instance, or leave its own events for a real run to send."""
    global _separate_state
    _separate_state = folder


def outbox_path_for(config_path: Path) -> Path:
    """The outbox beside the config file, beside its target when it is a symlink: one
    real config file is one instance, whichever path a process names it by."""
    if _separate_state is not None:
        return _separate_state / OUTBOX_FILE_NAME
    return Path(os.path.realpath(config_path)).with_name(OUTBOX_FILE_NAME)
