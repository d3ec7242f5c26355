"""SPEC section 4, instance ID: a canonical UUID4 made once on first need (a bot's
start), persisted as `telemetryInstanceId`, one ID for processes that start
together, a new one on `reset-id` (with the outbox emptied), none made by
reading (status, preview) or while telemetry is off, and anything else found in
the file (a UUID1 with its MAC address, the nil UUID, other spellings) replaced.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from slackonos_telemetry.telemetry.outbox import Outbox
from tests.support.environment import CLI_TIMEOUT_SECONDS, clean_environ, run_cli
from tests.test_config_store import FOREIGN, assert_foreign_keys_kept, read_only_config

PROCESSES = 8


def status_json(config_path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_cli("--config", str(config_path), "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def assert_uuid4(value: Any) -> None:
    assert isinstance(value, str), value
    assert str(uuid.UUID(value)) == value.lower()
    assert uuid.UUID(value).version == 4, value


def file_data(config_path: Path) -> dict[str, Any]:
    data = json.loads(config_path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def outbox_for(config_path: Path) -> Outbox:
    return Outbox(config_path.with_name("telemetry-outbox.json"))


# What a bot does on its first need of the ID (its tracker's start), in a process of its own.
FIRST_NEED = """
import json, sys
from pathlib import Path
from slackonos_telemetry.config.identity import ensure_instance_id
from slackonos_telemetry.config.store import ConfigStore
made = ensure_instance_id(ConfigStore(Path(sys.argv[1])))
print(json.dumps({"instance_id": made.value, "instance_id_persisted": made.persisted}))
"""


def first_need_at_once(config_path: Path, processes: int = PROCESSES) -> list[dict[str, Any]]:
    """The first need of the ID in ``processes`` processes started in a tight loop."""
    env = clean_environ()
    children: list[subprocess.Popen[str]] = []
    try:
        for _ in range(processes):
            children.append(
                subprocess.Popen(
                    [sys.executable, "-c", FIRST_NEED, str(config_path)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + CLI_TIMEOUT_SECONDS
        reports = []
        for child in children:
            out, err = child.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            assert child.returncode == 0, err
            reports.append(json.loads(out))
        return reports
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=5)


@pytest.mark.parametrize("start", ["no-folder", "foreign-keys-only"])
def test_processes_starting_together_share_one_id(config_path: Path, start: str) -> None:
    if start == "foreign-keys-only":
        config_path.parent.mkdir(parents=True)
        config_path.write_text(json.dumps(FOREIGN), encoding="utf-8")

    reports = first_need_at_once(config_path)

    ids = {report["instance_id"] for report in reports}
    assert len(ids) == 1, f"{len(ids)} different IDs from {PROCESSES} processes: {ids}"
    (instance_id,) = ids
    assert_uuid4(instance_id)
    assert all(report["instance_id_persisted"] is True for report in reports)
    assert file_data(config_path)["telemetryInstanceId"] == instance_id
    if start == "foreign-keys-only":
        assert_foreign_keys_kept(config_path)


def test_id_persists_across_runs(config_path: Path) -> None:
    (first,) = first_need_at_once(config_path, 1)
    assert_uuid4(first["instance_id"])
    assert first["instance_id_persisted"] is True

    (second,) = first_need_at_once(config_path, 1)
    after_toggle = run_cli("--config", str(config_path), "disable")
    assert after_toggle.returncode == 0, after_toggle.stderr
    while_disabled = status_json(config_path)

    assert second["instance_id"] == first["instance_id"]
    assert while_disabled["instance_id"] == first["instance_id"]
    assert file_data(config_path)["telemetryInstanceId"] == first["instance_id"]


def test_reset_id_changes_persists_and_empties_the_outbox(config_path: Path) -> None:
    (made,) = first_need_at_once(config_path, 1)
    old_id = made["instance_id"]
    outbox = outbox_for(config_path)
    for name in ("startup", "heartbeat", "shutdown"):
        outbox.add(make_event(name, old_id, RuntimeFacts("1.0", "test")))
    assert status_json(config_path)["outbox_pending"] == 3

    result = run_cli("--config", str(config_path), "reset-id")

    assert result.returncode == 0, result.stderr
    new_id = file_data(config_path)["telemetryInstanceId"]
    assert_uuid4(new_id)
    assert new_id != old_id
    assert old_id in result.stdout
    assert new_id in result.stdout
    assert str(config_path) in result.stdout
    assert outbox.pending() == []
    assert old_id not in outbox.path.read_text(encoding="utf-8")
    report = status_json(config_path)
    assert report["instance_id"] == new_id
    assert report["outbox_pending"] == 0
    assert status_json(config_path)["instance_id"] == new_id


def test_reset_id_twice_gives_two_new_ids(config_path: Path) -> None:
    first = run_cli("--config", str(config_path), "reset-id")
    id_one = file_data(config_path)["telemetryInstanceId"]
    second = run_cli("--config", str(config_path), "reset-id")
    id_two = file_data(config_path)["telemetryInstanceId"]

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert_uuid4(id_one)
    assert_uuid4(id_two)
    assert id_one != id_two


def test_id_that_cannot_be_saved_is_used_for_this_process() -> None:
    content = json.dumps({"adminChannel": "C0123ABCD"}) + "\n"
    with read_only_config(content) as config:
        original = config.path.read_bytes()
        result = config.run_python("-c", FIRST_NEED_IN_PROCESS, str(config.path))
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert_uuid4(report["made"])
        assert report["persisted"] is False
        # The same process's status shows it, and says it is for this process only.
        assert report["status_id"] == report["made"]
        assert "this process" in report["status_line"], report["status_line"]
        assert config.path.read_bytes() == original


FIRST_NEED_IN_PROCESS = """
import json, sys
from pathlib import Path
from slackonos_telemetry.admin import collect_status
from slackonos_telemetry.config.identity import ensure_instance_id
from slackonos_telemetry.config.store import ConfigStore
path = Path(sys.argv[1])
made = ensure_instance_id(ConfigStore(path))
report = collect_status(path)
line = next(l for l in report.text_lines() if l.startswith("Instance ID"))
print(json.dumps({"made": made.value, "persisted": made.persisted,
                  "status_id": report.instance_id, "status_line": line}))
"""


NOT_CANONICAL = {
    "uuid1-with-mac": str(uuid.uuid1()),
    "nil": "00000000-0000-0000-0000-000000000000",
    "urn": "urn:uuid:" + str(uuid.uuid4()),
    "braced": "{" + str(uuid.uuid4()) + "}",
    "upper-case": str(uuid.uuid4()).upper(),
    "no-hyphens": uuid.uuid4().hex,
    "not-a-string": 12345,
}


@pytest.mark.parametrize("found", sorted(NOT_CANONICAL))
def test_an_id_that_is_not_a_canonical_uuid4_is_replaced_and_never_shown(
    config_path: Path, found: str
) -> None:
    bad = NOT_CANONICAL[found]
    config_path.parent.mkdir(parents=True)
    config_path.write_text(json.dumps({"telemetryInstanceId": bad, **FOREIGN}), encoding="utf-8")

    assert status_json(config_path)["instance_id"] is None  # never shown as the ID
    (made,) = first_need_at_once(config_path, 1)

    assert_uuid4(made["instance_id"])
    assert made["instance_id"] != bad
    assert file_data(config_path)["telemetryInstanceId"] == made["instance_id"]
    assert_foreign_keys_kept(config_path)


DISABLED_WAYS = {
    "do-not-track": ({"DO_NOT_TRACK": "1"}, None),
    "env-false": ({"TELEMETRY_ENABLED": "false"}, None),
    "config-false": ({}, {"telemetryEnabled": False, "adminChannel": "C0123ABCD"}),
    "config-bad-value": ({}, {"telemetryEnabled": "nope"}),
    "env-false-over-config-true": ({"TELEMETRY_ENABLED": "off"}, {"telemetryEnabled": True}),
}


@pytest.mark.parametrize("way", sorted(DISABLED_WAYS))
def test_disabled_status_makes_no_id(config_path: Path, way: str) -> None:
    env, config = DISABLED_WAYS[way]
    if config is not None:
        config_path.parent.mkdir(parents=True)
        config_path.write_text(json.dumps(config), encoding="utf-8")
    original = config_path.read_bytes() if config is not None else None

    report = status_json(config_path, env=env)
    text = run_cli("--config", str(config_path), "status", env=env)

    assert report["enabled"] is False
    assert report["instance_id"] is None
    assert text.returncode == 0, text.stderr
    if original is None:
        assert not config_path.parent.exists(), sorted(config_path.parent.iterdir())
    else:
        assert config_path.read_bytes() == original
        assert sorted(p.name for p in config_path.parent.iterdir()) == ["config.json"]
