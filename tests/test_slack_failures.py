"""Env overrides (docs/CONTRACT.md, "Settings"), a broken config file and a save that fails,
as an admin meets them in Slack."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.bots import INSTANCE_ID, Testbed, base_config, open_testbed
from tests.support.files import write_config

BROKEN_JSON = '{\n  "gongLimit": 3,\n  "telemetryEnabled": tru\n}\n'
WRITE_ERRORS = tuple(os.strerror(code) for code in (errno.EPERM, errno.EACCES, errno.EROFS))


@pytest.fixture
def bed(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> Iterator[Testbed]:
    with open_testbed(monkeypatch, config_path) as testbed:
        yield testbed


def json_error_position(text: str) -> tuple[int, int]:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.lineno, exc.colno
    raise AssertionError("the text parses")


# -- the environment overrides the file -----------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "typed", "in_effect"),
    [
        ("TELEMETRY_ENABLED", "false", "true", "off"),
        ("DO_NOT_TRACK", "1", "true", "off"),
        ("TELEMETRY_ENABLED", "true", "false", "on"),
    ],
)
def test_setconfig_is_saved_but_the_env_decides(
    bed: Testbed,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    typed: str,
    in_effect: str,
) -> None:
    monkeypatch.setenv(variable, value)
    bed.write_config(base_config(telemetryEnabled=typed != "true"))
    bot = bed.start()

    text = bot.answer(f"setconfig telemetryEnabled {typed}").params["text"]

    config = bed.config()
    assert config["telemetryEnabled"] is (typed == "true"), "the value is saved all the same"
    assert config["gongLimit"] == 3
    assert str(bed.config_path) in text
    assert variable in text, f"the answer does not name {variable}: {text!r}"
    assert re.search(rf"\b{in_effect}\b", text), f"not said to stay {in_effect}: {text!r}"

    status = bot.answer("telemetry status").params["text"].splitlines()[0]
    assert f"env:{variable}" in status, status
    assert re.search(rf"\b{in_effect}\b", status), status


# -- a config file that cannot be read ---------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["setconfig telemetryEnabled false", "setconfig telemetryEnabled true", "telemetry reset-id"],
)
def test_writes_to_a_corrupt_config_answer_the_parse_error_and_change_nothing(
    bed: Testbed, command: str
) -> None:
    before = bed.write_config(BROKEN_JSON)
    line, column = json_error_position(BROKEN_JSON)
    bot = bed.start()

    text = bot.answer(command).params["text"]

    assert str(bed.config_path) in text, text
    assert f"line {line}" in text and f"column {column}" in text, text
    bot.settle()
    assert bed.config_bytes() == before


def test_a_config_that_is_not_an_object_is_reported_and_kept(bed: Testbed) -> None:
    before = bed.write_config('["telemetryEnabled", false]\n')
    bot = bed.start()

    text = bot.answer("setconfig telemetryEnabled false").params["text"]

    assert str(bed.config_path) in text
    assert "object" in text.lower(), text
    bot.settle()
    assert bed.config_bytes() == before


def test_status_with_a_corrupt_config_is_off_and_names_the_error(bed: Testbed) -> None:
    before = bed.write_config(BROKEN_JSON)
    line, column = json_error_position(BROKEN_JSON)
    bot = bed.start()

    answer = bot.answer("telemetry status")

    text = answer.params["text"]
    first = text.splitlines()[0]
    assert "config-error" in first and "withheld" in first, first
    assert str(bed.config_path) in text
    assert f"line {line}" in text and f"column {column}" in text, text
    bot.settle()
    assert bed.config_bytes() == before


# -- a save that fails ---------------------------------------------------------------------------


@pytest.fixture
def make_read_only() -> Iterator[Callable[[Path], None]]:
    """Make a folder and its files unwritable: chmod for a normal user, the immutable
    attribute for root (root ignores modes). Undone at teardown."""
    undo: list[Callable[[], object]] = []

    def lock(folder: Path) -> None:
        paths = [*sorted(folder.iterdir()), folder]
        for path in paths:
            if os.geteuid() != 0:
                mode = path.stat().st_mode & 0o777
                path.chmod(0o500 if path.is_dir() else 0o400)
                undo.append(lambda path=path, mode=mode: path.chmod(mode))
                continue
            chattr = shutil.which("chattr")
            if chattr is None:
                pytest.skip("running as root without chattr: cannot make a folder read-only")
            done = subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"chattr +i failed: {done.stderr.decode().strip()}")
            undo.append(
                lambda path=path, tool=chattr: subprocess.run([tool, "-i", str(path)], check=False)
            )
        probe = folder / "probe"
        try:
            probe.write_text("x")
        except OSError:
            return
        probe.unlink()
        pytest.skip("could not make the folder read-only here")

    yield lock
    for step in reversed(undo):
        step()


def test_a_failed_save_answers_the_error_and_changes_nothing(
    bed: Testbed, make_read_only: Callable[[Path], None]
) -> None:
    before = bed.write_config(base_config(telemetryEnabled=True))
    make_read_only(bed.config_path.parent)
    listing = sorted(os.listdir(bed.config_path.parent))
    bot = bed.start()

    text = bot.answer("setconfig telemetryEnabled false").params["text"]

    assert str(bed.config_path) in text, text
    assert any(error in text for error in WRITE_ERRORS), f"no OS error in {text!r}"
    status = bot.answer("telemetry status").params["text"].splitlines()[0]
    assert "on" in status.split() or "enabled" in status, f"memory changed: {status!r}"
    assert "config" in status

    reset = bot.answer("telemetry reset-id").params["text"]
    assert any(error in reset for error in WRITE_ERRORS), reset
    bot.settle()
    assert bed.config_bytes() == before
    assert sorted(os.listdir(bed.config_path.parent)) == listing, "files left behind"
    assert INSTANCE_ID in bed.config_bytes().decode()


def test_a_config_path_under_a_file_answers_the_error(bed: Testbed, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("I am a file\n")
    bed.config_path = blocker / "config.json"
    bot = bed.start()

    text = bot.answer("setconfig telemetryEnabled false").params["text"]

    assert str(bed.config_path) in text, text
    errors = (os.strerror(errno.ENOTDIR), os.strerror(errno.EEXIST))
    assert any(error in text for error in errors), text
    bot.settle()
    assert blocker.read_text() == "I am a file\n"
    assert os.listdir(tmp_path) == ["not-a-folder"]


def test_write_config_helper_round_trips(config_path: Path) -> None:
    """The harness's config writer produces the JSON the plugin reads."""
    data = write_config(config_path, base_config(telemetryEnabled=False))
    assert json.loads(data)["telemetryEnabled"] is False
