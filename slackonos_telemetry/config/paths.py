"""Where the config file is, and where the plugin keeps its own state.

The config file: the explicit path, else SLACKONOS_CONFIG, else ./config/config.json.

The state (the outbox and every lock file) lives in one folder named as ours, so
that one line of a ``.gitignore`` covers it:
1. ``TELEMETRY_STATE_DIR`` when set;
2. else ``.slackonos-telemetry/`` beside the config file (beside a symlink's target),
   when it is there already or the config's folder can be written;
3. else (a read-only config: a ConfigMap, a ``:ro`` mount) the user's state folder,
   ``$XDG_STATE_HOME`` (default ``~/.local/state``) ``/slackonos-telemetry/``, one
   folder per config file.
Every file in it starts with the config file's name, so two configs never share one (in
``TELEMETRY_STATE_DIR``, which two bots may be given, their configs may have one name:
there the name is followed by a hash of the config's path, as the user's folder has).
Finding the place never creates it: reading commands write nothing. One lock file is
tied to the config file instead (``config_lock_path``): the one that serializes writes
of the config itself.
"""

from __future__ import annotations

import enum
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from slackonos_telemetry.config.keys import CONFIG_ENV_VAR, TELEMETRY_STATE_DIR

DEFAULT_RELATIVE_PATH = Path("config") / "config.json"
STATE_FOLDER_NAME = ".slackonos-telemetry"
XDG_FOLDER_NAME = "slackonos-telemetry"
# Where versions before the state folder kept the outbox: beside the config file.
OLD_OUTBOX_NAME = "telemetry-outbox.json"


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


class StateReason(str, enum.Enum):
    """Why the state is where it is, as ``status`` says it."""

    ENV = f"{TELEMETRY_STATE_DIR} is set"
    BESIDE_CONFIG = "beside the config file"
    CONFIG_READ_ONLY = "the config's folder cannot be written, so the user's state folder"
    NOWHERE = "no folder can be written"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StatePlace:
    """The folder of one config file's state, and the names of its files."""

    folder: Path
    reason: StateReason
    config_name: str
    old_outbox: Path  # where an older version kept the outbox, to be taken over

    def file(self, role: str) -> Path:
        return self.folder / f"{self.config_name}.{role}"

    @property
    def outbox(self) -> Path:
        return self.file("outbox")

    @property
    def outbox_lock(self) -> Path:
        """Held for each outbox transaction, and for arrivals and leavings."""
        return self.file("outbox.lock")

    @property
    def send_lock(self) -> Path:
        """Held by the one process sending, for a whole pass."""
        return self.file("send.lock")

    @property
    def wire_lock(self) -> Path:
        """Held while a request is on the wire."""
        return self.file("wire.lock")

    @property
    def members_lock(self) -> Path:
        """Shared, held by each member process of the instance for its life."""
        return self.file("members.lock")

    @property
    def members(self) -> Path:
        """Which instance the members belong to (a small JSON record)."""
        return self.file("members")

    @property
    def writable(self) -> bool:
        return self.reason is not StateReason.NOWHERE


def state_place(config_path: Path, environ: Mapping[str, str] | None = None) -> StatePlace:
    env = os.environ if environ is None else environ
    real_config = Path(os.path.realpath(config_path))
    name, old = real_config.name, real_config.with_name(OLD_OUTBOX_NAME)
    chosen = env.get(TELEMETRY_STATE_DIR, "").strip()
    if chosen:
        unique = f"{name}-{_digest(real_config)}"
        return StatePlace(Path(os.path.abspath(chosen)), StateReason.ENV, unique, old)
    beside = real_config.parent / STATE_FOLDER_NAME
    if os.path.isdir(beside) or _can_create_in(real_config.parent):
        return StatePlace(beside, StateReason.BESIDE_CONFIG, name, old)
    user_folder = _user_state_home(env) / XDG_FOLDER_NAME / _folder_for(real_config)
    if os.path.isdir(user_folder) or _can_create_in(user_folder):
        return StatePlace(user_folder, StateReason.CONFIG_READ_ONLY, name, old)
    return StatePlace(user_folder, StateReason.NOWHERE, name, old)


def config_lock_path(config_path: Path) -> Path:
    """The lock that serializes the plugin's writes of the config file. Tied to the file,
    not to the state folder (TELEMETRY_STATE_DIR may differ between the processes that
    write one config): in ``.slackonos-telemetry/`` beside it, which can always be made
    where the config itself can be written."""
    real_config = Path(os.path.realpath(config_path))
    return real_config.parent / STATE_FOLDER_NAME / f"{real_config.name}.lock"


def _user_state_home(env: Mapping[str, str]) -> Path:
    given = env.get("XDG_STATE_HOME", "").strip()
    if given and os.path.isabs(given):
        return Path(given)
    return Path(os.path.expanduser("~")) / ".local" / "state"


def _folder_for(real_config: Path) -> str:
    """One folder per config file: its folder's name for a person, a hash for uniqueness."""
    return f"{real_config.parent.name or 'root'}-{_digest(real_config)}"


def _digest(real_config: Path) -> str:
    return hashlib.sha256(str(real_config).encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _can_create_in(folder: Path) -> bool:
    """Whether a folder could be made at ``folder``'s place (or inside it, if it exists):
    the nearest existing ancestor can be written."""
    probe = folder
    while not os.path.exists(probe):
        parent = probe.parent
        if parent == probe:
            return False
        probe = parent
    return os.path.isdir(probe) and os.access(probe, os.W_OK | os.X_OK)
