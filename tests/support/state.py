"""Where a bot keeps its state for a config file, as the tests look at it
(docs/CONTRACT.md, "The config file": the state folder)."""

from __future__ import annotations

import os
from pathlib import Path

from slackonos_telemetry.config.paths import state_place
from slackonos_telemetry.telemetry.outbox import Outbox

STATE_FOLDER = ".slackonos-telemetry"


def state_folder(config_path: Path) -> Path:
    """The state folder beside the config file (beside a symlink's target)."""
    return Path(os.path.realpath(config_path)).parent / STATE_FOLDER


def state_file(config_path: Path, role: str) -> Path:
    real = Path(os.path.realpath(config_path))
    return real.parent / STATE_FOLDER / f"{real.name}.{role}"


def outbox_path(config_path: Path) -> Path:
    return state_file(config_path, "outbox")


def outbox_for(config_path: Path, capacity: int = 1000) -> Outbox:
    return Outbox(state_place(config_path), capacity=capacity)


def make_state_folder(config_path: Path) -> Path:
    """The state folder, made as the plugin makes it (mode 0700): for tests that write
    a file of the plugin's by hand, as another program or an older version would."""
    folder = state_folder(config_path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder
