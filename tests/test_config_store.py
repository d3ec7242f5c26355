"""The shared config file (docs/CONTRACT.md, "The config file") is written atomically and
keeps every key it does not own; a file it cannot parse is never written over.

"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from slackonos_telemetry.config.store import ConfigStore
from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from tests.support.cli import CLI_TIMEOUT_SECONDS, run_cli
from tests.support.environment import PYTHON
from tests.support.files import (
    FOREIGN,
    assert_foreign_keys_kept,
    canonical,
    leftovers,
    outbox_for,
    write_foreign_config,
)
from tests.support.processes import started
from tests.support.users import read_only_config

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
    command = [PYTHON, "-c", _COUNTER_SCRIPT, str(config_path), str(_INCREMENTS_PER_WORKER)]
    store = ConfigStore(config_path)

    def bump() -> None:
        for _ in range(_INCREMENTS_PER_WORKER):
            store.modify(lambda current: {"counter": current.get("counter", 0) + 1})

    threads = [threading.Thread(target=bump) for _ in range(2)]
    with contextlib.ExitStack() as stack:
        children = [stack.enter_context(started(command)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=CLI_TIMEOUT_SECONDS)
        for child in children:
            assert child.wait_exit(CLI_TIMEOUT_SECONDS) == 0, child.describe()

    assert not any(thread.is_alive() for thread in threads)
    data = assert_foreign_keys_kept(config_path, {**FOREIGN, "counter": 6 * _INCREMENTS_PER_WORKER})
    assert data["counter"] == 6 * _INCREMENTS_PER_WORKER
    assert leftovers(config_path.parent) == []


def test_foreign_keys_survive_enable_disable_reset_id(config_path: Path) -> None:
    write_foreign_config(config_path)
    outbox = outbox_for(config_path)
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
    outbox = outbox_for(config_path)
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
