"""docs/CONTRACT.md, "CLI": the `status`, `enable`, `disable` and `reset-id` commands of the CLI,
run as a user runs them: `python -m slackonos_telemetry` and `slackonos-telemetry`.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.telemetry.events import RuntimeFacts, make_event
from slackonos_telemetry.telemetry.outbox import Outbox
from tests.support.cli import CONSOLE_SCRIPT, json_of, run_cli, run_console_script, status_json
from tests.support.files import outbox_for, read_config, write_config

SPEC_STATUS_KEYS = {
    "enabled",
    "source",
    "reason",
    "instance_id",
    "host",
    "api_key",
    "config_path",
    "outbox_pending",
    "outbox_dropped",
    "app_version",
    "release",
    "debug",
}
SPEC_DEFAULT_API_KEY = "phc_dkh7jm9oxMh7lLKr8TRBY0eKQ5Jn708pXk9McRC0qlO"
SPEC_DEFAULT_HOST = "https://us.i.posthog.com"


INSTANCE_ID = "6f1c1f5e-3b7a-4c52-9a43-0d6c2a9e8b11"


def add_events(outbox: Outbox, count: int) -> None:
    for _ in range(count):
        outbox.add(make_event("heartbeat", str(uuid.uuid4()), RuntimeFacts("1.0", "test")))


def status_of(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    """``ARGS`` (a ``status --json`` with its options in any order), as JSON."""
    return json_of(run_cli(*args, env=env, cwd=cwd))


def assert_one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# --- status ------------------------------------------------------------------------


def test_status_json_reports_every_setting(config_path: Path) -> None:
    api_key = "phc_customProjectKey0123456789abcdef"
    write_config(
        config_path,
        {
            "telemetryEnabled": True,
            "telemetryApiKey": api_key,
            "telemetryHost": "https://posthog.example.com",
            "telemetryInstanceId": INSTANCE_ID,
            "adminChannel": "C0123ABCD",
        },
    )
    add_events(outbox_for(config_path, capacity=2), 3)  # 2 kept, the oldest dropped
    env = {"SLACKONOS_RELEASE": "v9.9.9-test", "TELEMETRY_DEBUG": "1"}

    result = run_cli("--config", str(config_path), "status", "--json", env=env)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= SPEC_STATUS_KEYS, SPEC_STATUS_KEYS - set(report)
    assert report["enabled"] is True
    assert report["source"] == "config"
    assert report["reason"] is None
    assert report["instance_id"] == INSTANCE_ID
    assert report["host"] == "https://posthog.example.com"
    assert isinstance(report["api_key"], str)
    assert report["api_key"]
    assert report["api_key"] != api_key
    assert api_key not in result.stdout
    assert report["config_path"] == str(config_path)
    assert report["outbox_pending"] == 2
    assert report["outbox_dropped"] == 1
    assert report["app_version"] == importlib.metadata.version("slackonos-telemetry")
    assert report["release"] == "v9.9.9-test"
    assert report["debug"] is True


def test_status_json_defaults(config_path: Path) -> None:
    result = run_cli("--config", str(config_path), "status", "--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= SPEC_STATUS_KEYS
    assert (report["enabled"], report["source"], report["reason"]) == (True, "default", None)
    assert report["host"] == SPEC_DEFAULT_HOST
    assert report["api_key"]
    assert SPEC_DEFAULT_API_KEY not in result.stdout, "the API key is shown in full"
    assert report["outbox_pending"] == 0
    assert report["outbox_dropped"] == 0
    assert report["release"] == "unknown"  # no SLACKONOS_RELEASE, not in a git checkout
    assert report["debug"] is False


def test_status_json_when_disabled_by_env(config_path: Path) -> None:
    report = status_json(config_path, env={"TELEMETRY_ENABLED": "no"})

    assert (report["enabled"], report["source"]) == (False, "env:TELEMETRY_ENABLED")
    assert report["instance_id"] is None


@pytest.mark.parametrize(
    ("env", "config", "state", "source"),
    [
        ({}, None, "enabled", "default"),
        ({}, {"telemetryEnabled": False}, "disabled", "config"),
        (
            {"TELEMETRY_ENABLED": "off"},
            {"telemetryEnabled": True},
            "disabled",
            "env:TELEMETRY_ENABLED",
        ),
        ({"DO_NOT_TRACK": "1"}, None, "disabled", "env:DO_NOT_TRACK"),
        ({}, {"telemetryEnabled": "nope"}, "withheld", "config"),
    ],
)
def test_status_text_names_state_and_source(
    config_path: Path,
    env: dict[str, str],
    config: dict[str, Any] | None,
    state: str,
    source: str,
) -> None:
    if config is not None:
        write_config(config_path, config)

    result = run_cli("--config", str(config_path), "status", env=env)

    assert result.returncode == 0, result.stderr
    assert any(
        re.search(rf"\b{state}\b", line) and source in line for line in result.stdout.splitlines()
    ), result.stdout
    assert SPEC_DEFAULT_API_KEY not in result.stdout
    assert str(config_path) in result.stdout


def test_status_on_corrupt_config_reports_config_error(config_path: Path) -> None:
    text = '{\n  "telemetryEnabled": false\n  "adminChannel": "C0123ABCD"\n}\n'
    config_path.parent.mkdir(parents=True)
    config_path.write_text(text, encoding="utf-8")
    original = config_path.read_bytes()
    with pytest.raises(json.JSONDecodeError) as error:
        json.loads(text)
    position = f"line {error.value.lineno}, column {error.value.colno}"

    result = run_cli("--config", str(config_path), "status", "--json")
    plain = run_cli("--config", str(config_path), "status")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["enabled"], report["source"]) == (False, "config-error")
    assert str(config_path) in report["reason"]
    assert position in report["reason"]
    assert report["instance_id"] is None
    assert plain.returncode == 0, plain.stderr
    assert "config-error" in plain.stdout
    assert position in plain.stdout
    assert config_path.read_bytes() == original


# --- where the config file is ------------------------------------------------------


@pytest.mark.parametrize("way", ["before", "after", "env", "option-beats-env", "relative"])
def test_config_path_choice(tmp_path: Path, way: str) -> None:
    chosen = tmp_path / "chosen" / "config.json"
    other = tmp_path / "other" / "config.json"
    env: dict[str, str] = {}
    if way == "before":
        args = ["--config", str(chosen), "status", "--json"]
    elif way == "after":
        args = ["status", "--json", "--config", str(chosen)]
    elif way == "env":
        args = ["status", "--json"]
        env = {"SLACKONOS_CONFIG": str(chosen)}
    elif way == "option-beats-env":
        args = ["status", "--config", str(chosen), "--json"]
        env = {"SLACKONOS_CONFIG": str(other)}
    else:
        args = ["--config", os.path.join("chosen", "config.json"), "status", "--json"]

    report = status_of(*args, env=env, cwd=tmp_path)
    assert report["config_path"] == str(chosen)
    assert not chosen.parent.exists()  # reading never writes

    write_args = ["disable" if arg == "status" else arg for arg in args if arg != "--json"]
    result = run_cli(*write_args, env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert read_config(chosen)["telemetryEnabled"] is False
    assert not other.parent.exists()
    assert not (tmp_path / "config").exists()


def test_default_config_path_is_under_working_directory(tmp_path: Path) -> None:
    report = status_of("status", "--json", cwd=tmp_path)
    result = run_cli("disable", cwd=tmp_path)

    default = tmp_path / "config" / "config.json"
    assert report["config_path"] == str(default)
    assert result.returncode == 0, result.stderr
    assert read_config(default)["telemetryEnabled"] is False


@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_enable_writes_the_chosen_file(tmp_path: Path, where: str) -> None:
    chosen = tmp_path / "chosen" / "config.json"
    env = {"SLACKONOS_CONFIG": str(chosen)} if where == "env" else {}
    args = {
        "before": ["--config", str(chosen), "disable"],
        "after": ["disable", "--config", str(chosen)],
        "env": ["disable"],
    }[where]

    result = run_cli(*args, env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert read_config(chosen)["telemetryEnabled"] is False
    assert not (tmp_path / "config").exists()


# --- bad usage ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["bogus"], "bogus"),
        (["enabel"], "enabel"),
        (["status", "--bogus"], "--bogus"),
        (["--bogus", "status"], "--bogus"),
        (["enable", "--json"], "--json"),
        (["reset-id", "now"], "now"),
    ],
)
def test_bad_usage_exits_2_with_one_line(
    tmp_path: Path, config_path: Path, args: list[str], named: str | None
) -> None:
    write_config(config_path, {"telemetryEnabled": False})
    original = config_path.read_bytes()
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))

    result = run_cli(*args, env={"SLACKONOS_CONFIG": str(config_path)}, cwd=tmp_path)

    assert result.returncode == 2, (result.stdout, result.stderr)
    line = assert_one_error_line(result)
    if named is not None:
        assert named in line
    assert result.stdout == ""
    assert config_path.read_bytes() == original
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def test_a_bare_command_shows_the_status(tmp_path: Path, config_path: Path) -> None:
    write_config(config_path, {"telemetryEnabled": False})
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))

    bare = run_cli(env={"SLACKONOS_CONFIG": str(config_path)}, cwd=tmp_path)
    status = run_cli("status", env={"SLACKONOS_CONFIG": str(config_path)}, cwd=tmp_path)

    assert bare.returncode == 0, bare.stderr
    assert bare.stdout == status.stdout and "Telemetry: disabled (source: config)" in bare.stdout
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


# --- enable, disable ---------------------------------------------------------------


def test_enable_and_disable_print_old_new_and_path(config_path: Path) -> None:
    write_config(config_path, {"telemetryEnabled": False, "adminChannel": "C0123ABCD"})

    enable = run_cli("--config", str(config_path), "enable")
    after_enable = read_config(config_path)["telemetryEnabled"]
    disable = run_cli("--config", str(config_path), "disable")
    after_disable = read_config(config_path)["telemetryEnabled"]

    assert enable.returncode == 0, enable.stderr
    assert re.search(r"false.*true", enable.stdout, re.DOTALL), enable.stdout
    assert str(config_path) in enable.stdout
    assert after_enable is True
    assert disable.returncode == 0, disable.stderr
    assert re.search(r"true.*false", disable.stdout, re.DOTALL), disable.stdout
    assert str(config_path) in disable.stdout
    assert after_disable is False


@pytest.mark.parametrize(
    ("command", "env", "saved", "in_effect", "named"),
    [
        ("enable", {"TELEMETRY_ENABLED": "false"}, True, "off", "TELEMETRY_ENABLED"),
        ("enable", {"DO_NOT_TRACK": "1"}, True, "off", "DO_NOT_TRACK"),
        ("disable", {"TELEMETRY_ENABLED": "yes"}, False, "on", "TELEMETRY_ENABLED"),
    ],
)
def test_save_says_when_env_overrides(
    config_path: Path,
    command: str,
    env: dict[str, str],
    saved: bool,
    in_effect: str,
    named: str,
) -> None:
    result = run_cli("--config", str(config_path), command, env=env)

    assert result.returncode == 0, result.stderr
    assert read_config(config_path)["telemetryEnabled"] is saved
    assert named in result.stdout
    assert re.search(rf"\b{in_effect}\b", result.stdout), result.stdout


def test_enable_without_override_says_nothing_about_env(config_path: Path) -> None:
    result = run_cli("--config", str(config_path), "enable")

    assert result.returncode == 0, result.stderr
    assert "TELEMETRY_ENABLED" not in result.stdout
    assert "DO_NOT_TRACK" not in result.stdout


def test_disable_empties_the_outbox(config_path: Path) -> None:
    write_config(config_path, {"telemetryEnabled": True})
    outbox = outbox_for(config_path)
    add_events(outbox, 3)
    assert len(outbox.pending()) == 3

    result = run_cli("--config", str(config_path), "disable")

    assert result.returncode == 0, result.stderr
    assert outbox.pending() == []
    report = status_json(config_path)
    assert report["outbox_pending"] == 0
    assert report["enabled"] is False


def test_enable_keeps_the_outbox(config_path: Path) -> None:
    outbox = outbox_for(config_path)
    add_events(outbox, 2)

    result = run_cli("--config", str(config_path), "enable")

    assert result.returncode == 0, result.stderr
    assert len(outbox.pending()) == 2


# --- both entry points -------------------------------------------------------------


def test_module_and_console_script_both_work(config_path: Path) -> None:
    assert CONSOLE_SCRIPT.is_file(), f"no console script at {CONSOLE_SCRIPT}"

    by_module = run_cli("--config", str(config_path), "status", "--json")
    by_script = run_console_script("--config", str(config_path), "status", "--json")
    disabled = run_console_script("--config", str(config_path), "disable")
    script_usage = run_console_script("bogus")
    module_help = run_cli("--help")
    script_help = run_console_script("--help")

    assert by_module.returncode == 0, by_module.stderr
    assert by_script.returncode == 0, by_script.stderr
    assert json.loads(by_script.stdout) == json.loads(by_module.stdout)
    assert disabled.returncode == 0, disabled.stderr
    assert read_config(config_path)["telemetryEnabled"] is False
    assert script_usage.returncode == 2
    assert len(script_usage.stderr.splitlines()) == 1, script_usage.stderr
    for help_result in (module_help, script_help):
        assert help_result.returncode == 0, help_result.stderr
        for command in ("status", "enable", "disable", "reset-id"):
            assert command in help_result.stdout
