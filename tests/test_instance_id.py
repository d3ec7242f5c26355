"""The instance ID (docs/CONTRACT.md, "One instance"): a canonical UUID4 made once on
first need (a bot's start), persisted as `telemetryInstanceId`, one ID for processes that
start together, a new one on `reset-id` (with the outbox emptied), none made by reading
(status, preview) or while telemetry is off, and anything else found in the file (a UUID1
with its MAC address, the nil UUID, other spellings) replaced."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from tests.support.cli import CLI_TIMEOUT_SECONDS, run_cli, status_json
from tests.support.environment import PYTHON
from tests.support.events import assert_uuid4
from tests.support.files import FOREIGN, assert_foreign_keys_kept, outbox_for, read_config
from tests.support.processes import started
from tests.support.users import read_only_config, writable_by_nobody

PROCESSES = 8


# What a bot does on its first need of the ID (its tracker's start), in a process of its own.
FIRST_NEED = """
import json, sys
from pathlib import Path
from slackonos_telemetry.config.settings import resolve_settings
from slackonos_telemetry.telemetry.identity import ensure_instance_id
made = ensure_instance_id(resolve_settings(Path(sys.argv[1])))
print(json.dumps({"instance_id": made.value, "where": made.where, "problem": made.problem}))
"""


def first_need_at_once(config_path: Path, processes: int = PROCESSES) -> list[dict[str, Any]]:
    """The first need of the ID in ``processes`` processes started in a tight loop."""
    command = [PYTHON, "-c", FIRST_NEED, str(config_path)]
    with contextlib.ExitStack() as stack:
        children = [stack.enter_context(started(command)) for _ in range(processes)]
        reports = []
        for child in children:
            assert child.wait_exit(CLI_TIMEOUT_SECONDS) == 0, child.describe()
            reports.append(json.loads(child.stdout))
        return reports


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
    assert all(report["where"] == "config" for report in reports)
    assert read_config(config_path)["telemetryInstanceId"] == instance_id
    if start == "foreign-keys-only":
        assert_foreign_keys_kept(config_path)


def test_id_persists_across_runs(config_path: Path) -> None:
    (first,) = first_need_at_once(config_path, 1)
    assert_uuid4(first["instance_id"])
    assert first["where"] == "config"

    (second,) = first_need_at_once(config_path, 1)
    after_toggle = run_cli("--config", str(config_path), "disable")
    assert after_toggle.returncode == 0, after_toggle.stderr
    while_disabled = status_json(config_path)

    assert second["instance_id"] == first["instance_id"]
    assert while_disabled["instance_id"] == first["instance_id"]
    assert read_config(config_path)["telemetryInstanceId"] == first["instance_id"]


def test_reset_id_changes_persists_and_empties_the_outbox(config_path: Path) -> None:
    (made,) = first_need_at_once(config_path, 1)
    old_id = made["instance_id"]
    outbox = outbox_for(config_path)
    for name in ("startup", "heartbeat", "shutdown"):
        outbox.add(make_event(name, old_id, RuntimeFacts("1.0", "test")))
    assert status_json(config_path)["outbox_pending"] == 3

    result = run_cli("--config", str(config_path), "reset-id")

    assert result.returncode == 0, result.stderr
    new_id = read_config(config_path)["telemetryInstanceId"]
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
    id_one = read_config(config_path)["telemetryInstanceId"]
    second = run_cli("--config", str(config_path), "reset-id")
    id_two = read_config(config_path)["telemetryInstanceId"]

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert_uuid4(id_one)
    assert_uuid4(id_two)
    assert id_one != id_two


def test_a_read_only_config_keeps_the_id_it_makes_in_the_state_folder() -> None:
    content = json.dumps({"adminChannel": "C0123ABCD"}) + "\n"
    with read_only_config(content) as config, writable_by_nobody() as writable:
        env = {"XDG_STATE_HOME": str(writable)}
        original = config.path.read_bytes()
        runs = [config.run_python("-c", FIRST_NEED, str(config.path), env=env) for _ in (1, 2)]
        status = config.run_cli("--config", str(config.path), "status", "--json", env=env)

        assert [run.returncode for run in runs] == [0, 0], [run.stderr for run in runs]
        first, second = (json.loads(run.stdout) for run in runs)
        assert_uuid4(first["instance_id"])
        assert second["instance_id"] == first["instance_id"], "a new ID at every start"
        assert first["where"] == "state"
        report = json.loads(status.stdout)
        assert report["instance_id"] == first["instance_id"]
        assert report["instance_id_kept_in"] == "state"
        assert report["state_dir"].startswith(str(writable)), report
        assert "cannot be written" in report["state_reason"], report
        assert config.path.read_bytes() == original


def test_an_id_in_a_read_only_config_is_used_as_it_is() -> None:
    given = str(uuid.uuid4())
    content = json.dumps({"telemetryInstanceId": given}) + "\n"
    with read_only_config(content) as config, writable_by_nobody() as writable:
        env = {"XDG_STATE_HOME": str(writable)}
        result = config.run_python("-c", FIRST_NEED, str(config.path), env=env)

        assert result.returncode == 0, result.stderr
        found = json.loads(result.stdout)
        assert found == {"instance_id": given, "where": "config", "problem": None}


def test_with_nowhere_to_keep_an_id_none_is_made_and_status_says_the_fix() -> None:
    content = json.dumps({"adminChannel": "C0123ABCD"}) + "\n"
    with read_only_config(content) as config:
        env = {"XDG_STATE_HOME": str(config.path.parent / "state")}  # not writable either
        made = config.run_python("-c", FIRST_NEED, str(config.path), env=env)
        status = config.run_cli("--config", str(config.path), "status", "--json", env=env)

        assert made.returncode == 0, made.stderr
        found = json.loads(made.stdout)
        assert found["instance_id"] is None
        assert "telemetryInstanceId" in found["problem"], found
        assert "TELEMETRY_STATE_DIR" in found["problem"], found
        report = json.loads(status.stdout)
        assert report["instance_id"] is None
        assert "TELEMETRY_STATE_DIR" in report["state_problem"], report
        assert "telemetryInstanceId" in report["state_problem"], report
        assert sorted(os.listdir(config.path.parent)) == ["config.json"]


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
    assert read_config(config_path)["telemetryInstanceId"] == made["instance_id"]
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
