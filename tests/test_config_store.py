"""SPEC section 2: the shared config file is written atomically and keeps every key it
does not own; a file it cannot parse is never written over.

Also holds `read_only_config`, the read-only folder set-up that test_instance_id uses.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import slackonos_telemetry
from slackonos_telemetry.config.store import ConfigStore
from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from tests.support.environment import CLI_TIMEOUT_SECONDS, clean_environ, run_cli
from tests.support.state import STATE_FOLDER
from tests.support.state import outbox_for as state_outbox_for

OWNED_KEYS = {
    "telemetryEnabled",
    "telemetryApiKey",
    "telemetryHost",
    "telemetryInstanceId",
    "telemetryNoticeShown",
}

# 30 keys the plugin does not own, of every JSON type.
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


def canonical(value: Any) -> str:
    """JSON text of a value: tells 1 from 1.0 and from true, and -0.0 from 0.0."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def assert_foreign_keys_kept(path: Path, foreign: dict[str, Any] = FOREIGN) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
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


def write_foreign_config(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hand-written style: 4-space indent, ASCII escapes; the writer may reformat.
    path.write_text(json.dumps(FOREIGN, indent=4) + "\n", encoding="utf-8")


def leftovers(folder: Path) -> list[str]:
    """Temp files a write left behind (the plugin's state folder is not one)."""
    return sorted(
        name
        for name in os.listdir(folder)
        if name.endswith(".tmp") or (name.startswith(".") and name != STATE_FOLDER)
    )


# --- writes keep every foreign key -------------------------------------------------


def test_store_update_keeps_every_foreign_key(config_path: Path) -> None:
    write_foreign_config(config_path)
    store = ConfigStore(config_path)

    before = store.update({"telemetryEnabled": False, "telemetryNoticeShown": True})

    assert {key: canonical(v) for key, v in before.items()} == {
        key: canonical(v) for key, v in FOREIGN.items()
    }
    data = assert_foreign_keys_kept(config_path)
    assert data["telemetryEnabled"] is False
    assert data["telemetryNoticeShown"] is True
    assert store.read() == data
    assert leftovers(config_path.parent) == []


def test_store_modify_that_changes_nothing_does_not_write(config_path: Path) -> None:
    write_foreign_config(config_path)
    original = config_path.read_bytes()
    mtime = config_path.stat().st_mtime_ns

    ConfigStore(config_path).modify(lambda _current: None)

    assert config_path.read_bytes() == original
    assert config_path.stat().st_mtime_ns == mtime


_INCREMENTS_PER_WORKER = 20
_COUNTER_SCRIPT = """
import sys, threading
from pathlib import Path
from slackonos_telemetry.config.store import ConfigStore

store = ConfigStore(Path(sys.argv[1]))

def bump():
    for _ in range(int(sys.argv[2])):
        store.modify(lambda current: {"counter": current.get("counter", 0) + 1})

threads = [threading.Thread(target=bump) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


def test_writes_are_serialized_across_threads_and_processes(config_path: Path) -> None:
    """Read-modify-writes from 2 processes x 2 threads and 2 local threads lose nothing."""
    write_foreign_config(config_path)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _COUNTER_SCRIPT, str(config_path), str(_INCREMENTS_PER_WORKER)],
            env=clean_environ(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    store = ConfigStore(config_path)

    def bump() -> None:
        for _ in range(_INCREMENTS_PER_WORKER):
            store.modify(lambda current: {"counter": current.get("counter", 0) + 1})

    threads = [threading.Thread(target=bump) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=CLI_TIMEOUT_SECONDS)
        for child in children:
            _, err = child.communicate(timeout=CLI_TIMEOUT_SECONDS)
            assert child.returncode == 0, err
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=5)

    assert not any(thread.is_alive() for thread in threads)
    data = assert_foreign_keys_kept(config_path, {**FOREIGN, "counter": 6 * _INCREMENTS_PER_WORKER})
    assert data["counter"] == 6 * _INCREMENTS_PER_WORKER
    assert leftovers(config_path.parent) == []


def test_foreign_keys_survive_enable_disable_reset_id(config_path: Path) -> None:
    write_foreign_config(config_path)
    outbox = state_outbox_for(config_path)
    outbox.add(make_event("startup", str(uuid.uuid4()), RuntimeFacts("1.0", "test")))

    enable = run_cli("--config", str(config_path), "enable")
    assert enable.returncode == 0, enable.stderr
    assert assert_foreign_keys_kept(config_path)["telemetryEnabled"] is True

    disable = run_cli("--config", str(config_path), "disable")
    assert disable.returncode == 0, disable.stderr
    assert assert_foreign_keys_kept(config_path)["telemetryEnabled"] is False

    reset = run_cli("--config", str(config_path), "reset-id")
    assert reset.returncode == 0, reset.stderr
    data = assert_foreign_keys_kept(config_path)
    assert data["telemetryEnabled"] is False
    assert uuid.UUID(data["telemetryInstanceId"]).version == 4

    enable_again = run_cli("--config", str(config_path), "enable")
    assert enable_again.returncode == 0, enable_again.stderr
    final = assert_foreign_keys_kept(config_path)
    assert final["telemetryEnabled"] is True
    assert final["telemetryInstanceId"] == data["telemetryInstanceId"]
    assert leftovers(config_path.parent) == []


# --- file modes --------------------------------------------------------------------


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.parametrize("command", ["enable", "disable", "reset-id"])
def test_new_file_and_folder_are_created_with_mode_0600(config_path: Path, command: str) -> None:
    assert not config_path.parent.exists()

    with _umask(0):  # a permissive umask must not widen the new file
        result = run_cli("--config", str(config_path), command)

    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert isinstance(json.loads(config_path.read_text(encoding="utf-8")), dict)
    assert leftovers(config_path.parent) == []


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_existing_file_keeps_its_mode(config_path: Path, mode: int) -> None:
    write_foreign_config(config_path)
    config_path.chmod(mode)

    for command in ("enable", "disable", "reset-id"):
        result = run_cli("--config", str(config_path), command)
        assert result.returncode == 0, result.stderr
        assert stat.S_IMODE(config_path.stat().st_mode) == mode, command

    assert_foreign_keys_kept(config_path)


# --- a file that cannot be parsed is never written over ----------------------------

CORRUPT_FILES = {
    "not-json": '{\n  "adminChannel": "C0123ABCD",\n  telemetryEnabled: false\n}\n',
    "json-array": '[\n  {"telemetryEnabled": false}\n]\n',
    "truncated": '{\n  "telemetryEnabled": false,\n  "adminChannel": "C0123AB',
}


def _json_error_position(text: str) -> tuple[int, int] | None:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.lineno, exc.colno
    return None


@pytest.mark.parametrize("command", ["enable", "disable", "reset-id"])
@pytest.mark.parametrize("kind", sorted(CORRUPT_FILES))
def test_corrupt_file_is_never_written_over(config_path: Path, kind: str, command: str) -> None:
    text = CORRUPT_FILES[kind]
    config_path.parent.mkdir(parents=True)
    config_path.write_text(text, encoding="utf-8")
    config_path.chmod(0o644)
    original = config_path.read_bytes()
    outbox = state_outbox_for(config_path)
    outbox.add(make_event("startup", str(uuid.uuid4()), RuntimeFacts("1.0", "test")))
    outbox_before = outbox.path.read_bytes()

    result = run_cli("--config", str(config_path), command)

    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(config_path) in lines[0]
    position = _json_error_position(text)
    if position is not None:
        assert f"line {position[0]}, column {position[1]}" in lines[0]
    else:
        # Valid JSON that is not an object: where the offending value starts.
        assert "line 1, column 1" in lines[0], lines[0]
    assert config_path.read_bytes() == original
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o644
    assert outbox.path.read_bytes() == outbox_before, "a failed command changed the outbox"
    assert leftovers(config_path.parent) == []


@pytest.mark.parametrize("command", ["status", "enable", "disable", "reset-id"])
def test_config_path_that_is_a_directory(config_path: Path, command: str) -> None:
    config_path.mkdir(parents=True)
    (config_path / "keep.txt").write_text("x", encoding="utf-8")

    result = run_cli("--config", str(config_path), command)

    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(config_path) in lines[0]
    assert "directory" in lines[0]
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(config_path)) == ["keep.txt"]


# --- a folder the CLI may not write in ---------------------------------------------

NOBODY = 65534


def _python_path() -> str:
    project_root = Path(slackonos_telemetry.__file__).resolve().parent.parent
    site_dirs = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return os.pathsep.join([str(project_root), *sorted(site_dirs)])


@functools.lru_cache(maxsize=1)
def _nobody_python() -> str | None:
    """An interpreter user nobody can run that imports this project, else None.

    The venv's interpreter can live under a home folder nobody may not enter, so a
    system interpreter of the same version, given the venv's site dir, is tried too.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable]
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        found = shutil.which(f"python{version}", path=directory)
        if found:
            candidates.append(found)
    probe = "import sys, tinydb, slackonos_telemetry.cli; print('%d.%d' % sys.version_info[:2])"
    for candidate in candidates:
        try:
            result = _run_as_nobody([candidate, "-c", probe], Path("/"))
        except OSError:
            continue
        if result.returncode == 0 and result.stdout.strip() == version:
            return candidate
    return None


def _run_as_nobody(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    extra = {"PYTHONPATH": _python_path(), "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    return subprocess.run(
        command,
        env=clean_environ(extra),
        cwd=cwd,
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


class ReadOnlyConfig:
    """A config file in a folder the CLI subprocess may read but not write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._as_root = os.geteuid() == 0

    def run_cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run_python("-m", "slackonos_telemetry", *args, env=env)

    def run_python(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``python ARGS`` as a user who may read the file but not write in its folder."""
        if not self._as_root:
            return subprocess.run(
                [sys.executable, *args],
                env=clean_environ(env),
                cwd=self.path.parent.parent,
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT_SECONDS,
                check=False,
            )
        python = _nobody_python()
        if python is None:
            pytest.skip("no Python interpreter that user nobody may run imports this project")
        return _run_as_nobody([python, *args], self.path.parent.parent, env)


@contextlib.contextmanager
def read_only_config(content: str) -> Iterator[ReadOnlyConfig]:
    """config/config.json holding ``content`` in a folder the CLI cannot write in.

    As root (which ignores folder permissions) the CLI runs as user nobody: the
    folder is root's, mode 0755, and the file 0644. Otherwise the folder is 0555.
    """
    base = Path(tempfile.mkdtemp(prefix="slackonos-readonly-"))
    folder = base / "config"
    try:
        base.chmod(0o755)  # nobody must reach the file
        folder.mkdir()
        path = folder / "config.json"
        path.write_text(content, encoding="utf-8")
        path.chmod(0o644)
        folder.chmod(0o755 if os.geteuid() == 0 else 0o555)
        yield ReadOnlyConfig(path)
    finally:
        with contextlib.suppress(OSError):
            folder.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("command", ["enable", "disable", "reset-id"])
def test_read_only_folder_fails_cleanly(command: str) -> None:
    content = json.dumps({**FOREIGN, "telemetryEnabled": False}, indent=2) + "\n"
    with read_only_config(content) as config:
        original = config.path.read_bytes()

        result = config.run_cli("--config", str(config.path), command)

        if command == "disable":  # already off: nothing to write, nothing fails
            assert result.returncode == 0, (result.stdout, result.stderr)
            assert "already false" in result.stdout and "saved" not in result.stdout
        else:
            assert result.returncode == 1, (result.stdout, result.stderr)
            lines = result.stderr.splitlines()
            assert len(lines) == 1, result.stderr
            assert str(config.path) in lines[0]
            assert "permission denied" in lines[0].lower()
            assert "saved" not in result.stdout
        assert config.path.read_bytes() == original
        assert sorted(os.listdir(config.path.parent)) == ["config.json"]
