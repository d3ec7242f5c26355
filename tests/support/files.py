"""The files of a bot as a person (or another program) sees them: the config file, the
plugin's state folder beside it, the outbox read as JSON (docs/CONTRACT.md, "The config
file").

Nothing here opens a lock file of the plugin's. POSIX ``lockf`` locks belong to a
process and are dropped when any descriptor of the file in that process is closed: a
test that opened one in the process of a bot running in-process (``Testbed``) would
free that bot's locks. Lock files are looked at by name and ``lstat`` only; what needs
the lock goes through the package's own API (``outbox_for``), or runs in a subprocess.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slackonos_telemetry.config.paths import state_place
from slackonos_telemetry.config.storages import SETTLE_RECENT_SECONDS
from slackonos_telemetry.telemetry.events import Event
from slackonos_telemetry.telemetry.outbox import (
    EVENTS_TABLE,
    META_TABLE,
    SESSION_TABLE,
    Outbox,
)
from tests.support.environment import PYTHON
from tests.support.processes import WAIT, started

STATE_FOLDER = ".slackonos-telemetry"
OUTBOX_CAPACITY = 1000  # docs/CONTRACT.md, "Delivery"

# -- the config file ----------------------------------------------------------------------


def write_config(path: Path, config: Mapping[str, Any] | str) -> bytes:
    """The file written whole, as a person's editor would: an object as JSON with a
    two-space indent and a final newline, or ``config`` as it is when it is text (a
    file with a look of its own, or one that is not JSON at all). Its bytes."""
    text = config if isinstance(config, str) else json.dumps(dict(config), indent=2) + "\n"
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def read_config(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), data
    return data


def text_of(path: Path) -> str:
    """The file's text exactly (``read_text`` would turn \\r\\n into \\n)."""
    return path.read_bytes().decode("utf-8")


def settled(path: Path) -> Path:
    """The file, last changed long enough ago that the plugin takes it as it is.

    A config file changed within the last second that does not parse may be a host's
    rewrite in place caught half way: the plugin reads it again for a moment before it
    believes it (docs/CONTRACT.md, "The config file"; tested on its own with a host that
    rewrites the file). A test about a file that stays broken says so with this, instead
    of waiting out that moment at every read."""
    before = path.stat().st_mtime_ns
    stamp = before - int((SETTLE_RECENT_SECONDS + 1.0) * 1e9)
    os.utime(path, ns=(stamp, stamp))
    return path


# A host bot's own keys, 30 of them, of every JSON type: the plugin keeps them all.
FOREIGN: dict[str, Any] = {
    "botName": "SlackONOS",
    "adminChannel": "#music-admin",
    "slackAppToken": "xapp-1-A0000000000-0000000000000-abcdef",
    "sonosIp": "192.168.1.50",
    "numericString": "0012",
    "volumeMax": 75,
    "volumeStep": 0,
    "negative": -17,
    "bigInt": 2**64 + 1,
    "hugeNegative": -(10**30),
    "pi": 3.141592653589793,
    "tiny": 1e-300,
    "largeFloat": 1.7976931348623157e308,
    "floatOne": 1.0,
    "negativeZero": -0.0,
    "featureOn": True,
    "featureOff": False,
    "nothing": None,
    "emptyString": "",
    "emptyList": [],
    "emptyObject": {},
    "unicode": "Mötley Crüe — 東京 🎸 שלום",
    "escapes": 'line1\nline2\t"quoted" \\ back\x00nul \u2028 sep',
    "nested": {"level1": {"level2": {"level3": [1, {"deep": "yes"}, None]}}},
    "mixedArray": [1, "two", 3.0, True, None, {"k": []}, [[]]],
    "ünïcödé-kéy 🔑": "value",
    "key with spaces.and.dots": {"a.b": 1, "": 0},
    "": "empty key",
    "TelemetryEnabled": "not the plugin's key: the case differs",
    "telemetry": {"enabled": False, "host": "ftp://not-ours"},
}
assert len(FOREIGN) == 30
OWNED_KEYS = frozenset(
    {
        "telemetryEnabled",
        "telemetryApiKey",
        "telemetryHost",
        "telemetryInstanceId",
        "telemetryNoticeShown",
    }
)


def write_foreign_config(path: Path) -> None:
    """The host's keys, hand-written style: 4-space indent, ASCII escapes."""
    write_config(path, json.dumps(FOREIGN, indent=4) + "\n")


def canonical(value: Any) -> str:
    """JSON text of a value: tells 1 from 1.0 and from true, and -0.0 from 0.0."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def assert_foreign_keys_kept(path: Path, foreign: Mapping[str, Any] = FOREIGN) -> dict[str, Any]:
    """Every key of ``foreign`` is in the file with its value, and nothing else but the
    plugin's own keys; the file's object."""
    data = read_config(path)
    missing = sorted(set(foreign) - set(data))
    assert not missing, f"foreign keys lost: {missing}"
    changed = {
        key: (foreign[key], data[key])
        for key in foreign
        if canonical(data[key]) != canonical(foreign[key])
    }
    assert not changed, f"foreign values changed (was, now): {changed}"
    unexpected = sorted(set(data) - set(foreign) - OWNED_KEYS)
    assert not unexpected, f"keys nobody asked for: {unexpected}"
    return data


def leftovers(folder: Path) -> list[str]:
    """Temp files a write left behind (the plugin's state folder is not one)."""
    return sorted(
        name
        for name in os.listdir(folder)
        if name.endswith(".tmp") or (name.startswith(".") and name != STATE_FOLDER)
    )


# -- the state folder -----------------------------------------------------------------------


def state_folder(config_path: Path) -> Path:
    """The state folder beside the config file (beside a symlink's target)."""
    return Path(os.path.realpath(config_path)).parent / STATE_FOLDER


def state_file(config_path: Path, role: str) -> Path:
    """A file of the plugin's in the state folder beside the config: ``outbox``,
    ``outbox.lock``, ``members``... (by name only: see the module's docstring)."""
    real = Path(os.path.realpath(config_path))
    return real.parent / STATE_FOLDER / f"{real.name}.{role}"


def outbox_path(config_path: Path) -> Path:
    return state_file(config_path, "outbox")


def make_state_folder(config_path: Path) -> Path:
    """The state folder, made as the plugin makes it (mode 0700): for tests that write
    a file of the plugin's by hand, as another program or an older version would."""
    folder = state_folder(config_path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


# A process that holds a lock file of the plugin's until its stdin closes.
_HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def held_by_another_process(lock_path: Path) -> Iterator[None]:
    """``lock_path`` (a lock file of the plugin's) held, as another bot or CLI would hold it,
    by a process of its own: never by this one (see the module's docstring)."""
    lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with started([PYTHON, "-c", _HOLD_LOCK, str(lock_path)]) as holder:
        assert holder.wait_for_line(lambda line: line == "locked", WAIT), holder.describe()
        yield


# -- the outbox, through the package (with its locks) -------------------------------------


def outbox_for(config_path: Path, capacity: int = OUTBOX_CAPACITY) -> Outbox:
    """The config's outbox as the plugin opens it, wherever its state folder is."""
    return Outbox(state_place(config_path), capacity=capacity)


def pending(config_path: Path) -> list[dict[str, Any]]:
    """The events waiting in the config's outbox, oldest first (the package's reading)."""
    return outbox_for(config_path).pending()


def add_to_outbox(config_path: Path, events: list[Event]) -> list[str]:
    """``events`` put in the outbox, as a bot that could not send them left them; their
    uuids."""
    outbox = outbox_for(config_path)
    for event in events:
        outbox.add(event)
    return [str(event["uuid"]) for event in events]


# -- the outbox file, read as JSON (no lock: a half-written file reads as {}) --------------


def outbox_data(config_path: Path, path: Path | None = None) -> dict[str, Any]:
    """The outbox file beside the config (or the file at ``path``) as JSON: {} when it is
    missing, or caught half written."""
    try:
        data = json.loads((path or outbox_path(config_path)).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def outbox_events(config_path: Path, path: Path | None = None) -> list[dict[str, Any]]:
    """The events in the outbox file, in file order."""
    table = outbox_data(config_path, path).get(EVENTS_TABLE)
    if not isinstance(table, dict):
        return []
    return [entry for entry in table.values() if isinstance(entry, dict)]


def outbox_uuids(config_path: Path, path: Path | None = None) -> list[str]:
    return [str(entry.get("uuid")) for entry in outbox_events(config_path, path)]


def _document(config_path: Path, table: str) -> dict[str, Any]:
    found = outbox_data(config_path).get(table)
    document = found.get("1") if isinstance(found, dict) else None
    return document if isinstance(document, dict) else {}


def outbox_meta(config_path: Path) -> dict[str, Any]:
    """The outbox's counters (``dropped``, ``lastDelivery``...)."""
    return _document(config_path, META_TABLE)


def session(config_path: Path) -> dict[str, Any]:
    """The instance session: its start, the last heartbeat slot, the members' exits."""
    return _document(config_path, SESSION_TABLE)


def last_slot(config_path: Path) -> int:
    """The last heartbeat slot the instance went through (made or, while off, skipped)."""
    slot = session(config_path).get("lastSlot", 0)
    return slot if isinstance(slot, int) else 0


def outbox_dropped(config_path: Path) -> int:
    dropped = outbox_meta(config_path).get("dropped")
    return dropped if isinstance(dropped, int) else 0


# -- a folder, as a person could see it changed ---------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Everything a person could see changed about a path (without following a link)."""

    kind: int
    owner: tuple[int, int]
    mode: int
    mtime_ns: int
    link: str | None
    content: bytes | None

    @classmethod
    def of(cls, path: Path) -> Snapshot:
        status = os.lstat(path)
        link = os.readlink(path) if stat.S_ISLNK(status.st_mode) else None
        content = path.read_bytes() if stat.S_ISREG(status.st_mode) else None
        return cls(
            stat.S_IFMT(status.st_mode),
            (status.st_uid, status.st_gid),
            stat.S_IMODE(status.st_mode),
            status.st_mtime_ns,
            link,
            content,
        )


def tree(root: Path) -> dict[str, Snapshot]:
    """Every path under ``root``, ``root`` itself as ".", not following links ({} when
    ``root`` is not there). A file gone while looked at (a temp file renamed) is left out."""
    if not os.path.lexists(root):
        return {}
    found = {".": Snapshot.of(root)}
    for path in sorted(root.rglob("*")):
        with contextlib.suppress(FileNotFoundError):
            found[str(path.relative_to(root))] = Snapshot.of(path)
    return found


# -- a file as a user sees it in git ------------------------------------------------------


def lines(text: str) -> list[str]:
    """Lines with their endings, split where an editor splits them (\\n, \\r\\n, \\r)."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)


def diff(old: str, new: str) -> tuple[list[str], list[str]]:
    """The lines ``git diff`` shows removed and added."""
    before, after = lines(old), lines(new)
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    removed: list[str] = []
    added: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            removed += before[i1:i2]
            added += after[j1:j2]
    return removed, added
