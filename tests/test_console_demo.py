"""The console demo as an operator meets it (docs/CONTRACT.md, "Run modes"): `run` as a
real subprocess, its stdin and stdout a pipe or a pseudo-terminal, the events it prints, and
what reaches a PostHog capture server standing in for the configured host."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.capture import ACCEPT, REFUSE, capture_server
from tests.support.cli import cli_process, run_cli
from tests.support.events import EVENT_PROPERTIES, own_properties
from tests.support.files import (
    held_by_another_process,
    outbox_events,
    read_config,
    state_file,
    tree,
    write_config,
)
from tests.support.processes import GENEROUS_SHUTDOWN, WAIT, Process
from tests.support.waiting import wait_until, within

SHUTDOWN_TIMEOUT = 1.0  # TELEMETRY_SHUTDOWN_TIMEOUT given to bots whose exit is timed

PROMPT = "you> "
LOCAL = "→ PostHog (local): "
LOCAL_EVENT = re.compile(r"^→ PostHog \(local\): (\w+) (\{.*\})$")
NOTICE = "bot> This bot sends anonymous usage telemetry"
SHUTTING_DOWN = "Shutting down"
INSTANCE = "5d0c8a52-34a1-4c2b-9e3f-6a7b8c9d0e1f"
# Every command of docs/CONTRACT.md, "Slack commands" (plus `telemetry help`), as `help` names them.
TELEMETRY_COMMANDS = (
    "telemetry status",
    "telemetry preview",
    "telemetry reset-id",
    "telemetry help",
    "setconfig telemetryEnabled",
)
HOST_COMMANDS = ("help", "setconfig <key> <value>")

# -- reading what the console printed ----------------------------------------------------------


def local_events(lines: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The "→ PostHog (local)" lines: each event's name and the payload (which must parse)."""
    found = []
    for line in lines:
        if line.startswith(LOCAL):
            match = LOCAL_EVENT.match(line)
            assert match, f"not a name and a JSON payload: {line!r}"
            payload = json.loads(match.group(2))
            assert isinstance(payload, dict)
            found.append((match.group(1), payload))
    return found


def banner_of(bot: Process) -> str:
    assert bot.wait_for_output(lambda out: "Ctrl-D quits" in out), bot.describe()
    lines = bot.lines()
    end = next(number for number, line in enumerate(lines) if "Ctrl-D quits" in line)
    return "\n".join(lines[: end + 1])


def telemetry_line(banner: str) -> str:
    return next(line for line in banner.splitlines() if line.startswith("Telemetry: "))


def ends_at_a_fresh_prompt(out: str, *markers: str) -> bool:
    """Every marker was shown, and a new prompt, on its own line, came after the last."""
    if not all(marker in out for marker in markers):
        return False
    last = max(out.rfind(marker) for marker in markers)
    return f"\n{PROMPT}" in out[last:]


@contextlib.contextmanager
def console_in_a_terminal(config_path: Path) -> Iterator[Process]:
    """``run`` on a pseudo-terminal, on ``config_path``, with time to shut down."""
    with cli_process(
        "--config",
        str(config_path),
        "run",
        terminal=True,
        env={"TELEMETRY_SHUTDOWN_TIMEOUT": GENEROUS_SHUTDOWN},
    ) as tty:
        yield tty


def started_at_its_prompt(tty: Process) -> None:
    """Until the startup event printed and the prompt is back: the plugin runs."""
    assert tty.wait_for_text(lambda out: ends_at_a_fresh_prompt(out, f"{LOCAL}startup")), (
        tty.describe()
    )


def answer_block(lines: list[str], first_words: str) -> list[str]:
    """The `bot>` answer starting with ``first_words``, with its indented lines."""
    for number, line in enumerate(lines):
        if line.startswith(f"bot> {first_words}"):
            return [line, *_indented_after(lines, number + 1)]
    raise AssertionError(f"no answer starting {first_words!r} in {lines}")


def _indented_after(lines: list[str], start: int) -> Iterator[str]:
    for line in lines[start:]:
        if not line.startswith("    "):
            return
        yield line


def ask(bot: Process, line: str, first_words: str) -> list[str]:
    start = bot.send_line(line)
    assert bot.wait_for_output(
        lambda out: any(text.startswith(f"bot> {first_words}") for text in out.splitlines()),
        WAIT,
        start,
    ), f"no answer to {line!r}\n{bot.describe()}"
    # The answer is printed whole, in one write; read it from what came after the line.
    return answer_block(bot.lines()[start:], first_words)


# -- a demo is never counted -------------------------------------------------------------------


@pytest.mark.parametrize("configured_by", ["TELEMETRY_HOST", "telemetryHost"])
def test_run_without_flags_sends_nothing_to_the_configured_host_and_prints_each_event(
    config_path: Path, configured_by: str
) -> None:
    with capture_server() as capture:
        env = {"TELEMETRY_SHUTDOWN_TIMEOUT": GENEROUS_SHUTDOWN}
        if configured_by == "TELEMETRY_HOST":
            env["TELEMETRY_HOST"] = capture.url
        else:
            write_config(config_path, {"telemetryHost": capture.url})
        with cli_process("--config", str(config_path), "run", "--console", env=env) as bot:
            banner = banner_of(bot)
            assert "local PostHog stand-in" in banner, banner
            assert capture.url not in banner, banner
            # The startup event prints as the stand-in receives it, while the console runs.
            assert bot.wait_for_output(lambda out: f"{LOCAL}startup {{" in out), bot.describe()

            code, _ = bot.timed_exit(bot.close_stdin)

            assert code == 0, bot.describe()
            lines = bot.lines()
        assert capture.requests == [], "the demo sent to the configured host"
        shown = dict(local_events(lines))
        assert set(shown) == {"startup", "shutdown"}, lines
        instance_id = read_config(config_path)["telemetryInstanceId"]
        for name, event in shown.items():
            assert event["event"] == name
            assert event["distinct_id"] == instance_id
            assert set(own_properties(event)) == EVENT_PROPERTIES[name], event
            # The payload as the SDK put it on the wire: its own properties included.
            assert {"$lib", "$lib_version", "$geoip_disable"} <= set(event["properties"])
        shutting_down = next(n for n, line in enumerate(lines) if line.startswith(SHUTTING_DOWN))
        shutdown_line = next(
            n for n, line in enumerate(lines) if line.startswith(f"{LOCAL}shutdown")
        )
        assert shutting_down < shutdown_line, lines


def test_run_console_posthog_real_sends_to_the_configured_host(config_path: Path) -> None:
    with capture_server() as capture:
        env = {"TELEMETRY_HOST": capture.url, "TELEMETRY_SHUTDOWN_TIMEOUT": GENEROUS_SHUTDOWN}
        args = ("--config", str(config_path), "run", "--console", "--posthog", "real")
        with cli_process(*args, env=env) as bot:
            banner = banner_of(bot)
            assert f"sent to {capture.url}" in telemetry_line(banner), banner
            assert capture.wait_for_events(1, "startup", timeout=WAIT), bot.describe()

            code, _ = bot.timed_exit(bot.close_stdin)

            assert code == 0, bot.describe()
            assert capture.wait_for_events(1, "shutdown", timeout=WAIT), bot.describe()
            assert LOCAL not in bot.stdout, "no local stand-in with --posthog real"
        instance_id = read_config(config_path)["telemetryInstanceId"]
        assert {event["distinct_id"] for event in capture.events} == {instance_id}


def test_events_a_real_run_left_waiting_are_not_swallowed_by_the_demo(config_path: Path) -> None:
    """The outbox is shared: a bot that could not deliver its shutdown leaves it for its
    next start. A demo on the same config must not take it for itself."""
    with capture_server(REFUSE) as capture:
        env = {"TELEMETRY_HOST": capture.url, "TELEMETRY_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT)}
        args = ("--config", str(config_path), "run", "--console", "--posthog", "real")
        with cli_process(*args, env=env) as bot:
            banner_of(bot)
            code, _ = bot.timed_exit(bot.close_stdin)
            assert code == 0, bot.describe()
        left = _outbox_uuids(config_path)
        assert left, "the real run left nothing waiting: nothing to test"

        env["TELEMETRY_SHUTDOWN_TIMEOUT"] = GENEROUS_SHUTDOWN
        with cli_process("--config", str(config_path), "run", "--console", env=env) as demo:
            banner_of(demo)
            code, _ = demo.timed_exit(demo.close_stdin)
            assert code == 0, demo.describe()

        capture.set_mode(ACCEPT)
        with cli_process(*args, env=env) as bot:
            banner_of(bot)
            code, _ = bot.timed_exit(bot.close_stdin)
            assert code == 0, bot.describe()
        arrived = {event["uuid"] for event in capture.events}
        assert left <= arrived, f"never delivered: {left - arrived}"


def test_events_the_demo_left_waiting_never_reach_the_configured_host(config_path: Path) -> None:
    # The demo's state is its own: whatever it made stays out of the real outbox, so a
    # later `flush` (or a real run) can never send it to the configured host.
    env = {"TELEMETRY_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT)}
    args = ("--config", str(config_path), "run", "--console")
    with cli_process(*args, env=env) as demo:
        banner_of(demo)
        assert demo.wait_for_output(lambda out: "→ PostHog (local): startup" in out, WAIT), (
            demo.describe()
        )
        code, _ = demo.timed_exit(demo.close_stdin)
        assert code == 0, demo.describe()
    assert _outbox_uuids(config_path) == set(), "the demo left events in the real outbox"

    with capture_server() as capture:
        result = run_cli("--config", str(config_path), "flush", env={"TELEMETRY_HOST": capture.url})
        assert result.returncode == 0, result.stderr
        assert capture.requests == [], "the demo's events reached the configured host"


def _outbox_uuids(config_path: Path) -> set[str]:
    return {str(event["uuid"]) for event in outbox_events(config_path)}


# -- CI runs are not counted -------------------------------------------------------------------


@pytest.mark.parametrize("ci", ["true", "1"])
def test_console_under_ci_says_so_first_and_sends_nothing(config_path: Path, ci: str) -> None:
    with capture_server() as capture:
        env = {"CI": ci, "TELEMETRY_HOST": capture.url, "TELEMETRY_SHUTDOWN_TIMEOUT": "5"}
        args = ("--config", str(config_path), "run", "--console", "--posthog", "real")
        with cli_process(*args, env=env) as bot:
            line = telemetry_line(banner_of(bot))
            assert line.startswith("Telemetry: off (source: env:CI)"), line

            status = ask(bot, "telemetry status", "Telemetry is")
            assert status[0] == "bot> Telemetry is withheld (source: env:CI)", status

            code, _ = bot.timed_exit(bot.close_stdin)

            assert code == 0, bot.describe()
            assert NOTICE not in bot.stdout, "no first-run notice while off"
        assert capture.requests == [], "a CI run was counted"


# -- the console on a terminal -----------------------------------------------------------------


def test_output_while_the_prompt_waits_starts_its_own_line_and_a_new_prompt_follows(
    config_path: Path,
) -> None:
    with console_in_a_terminal(config_path) as tty:
        assert tty.wait_for_text(lambda out: out.endswith(PROMPT)), tty.describe()
        # Nothing is typed: the first-run notice and the startup event come on their own.
        assert tty.wait_for_text(
            lambda out: ends_at_a_fresh_prompt(out, NOTICE, f"{LOCAL}startup")
        ), tty.describe()

        out = tty.text()
        for marker in (NOTICE, LOCAL):
            for found in re.finditer(re.escape(marker), out):
                start = found.start()
                assert start == 0 or out[start - 1] == "\n", (
                    f"{marker!r} does not start its own line:\n{out}"
                )

        # And the prompt still works: a line typed now is answered.
        tty.type("telemetry status\n")
        assert tty.wait_for_text(lambda out: ends_at_a_fresh_prompt(out, "bot> Telemetry is on")), (
            tty.describe()
        )


@pytest.mark.parametrize("how", ["ctrl-d", "ctrl-c", "sigterm"])
def test_eof_ctrl_c_and_sigterm_end_the_console_alike(config_path: Path, how: str) -> None:
    write_config(config_path, {"telemetryNoticeShown": True})
    with console_in_a_terminal(config_path) as tty:
        started_at_its_prompt(tty)  # what is tested is the end

        if how == "ctrl-d":
            tty.type("\x04")
        elif how == "ctrl-c":
            tty.type("\x03")  # the terminal makes it SIGINT, for the whole foreground group
        else:
            tty.signal(signal.SIGTERM)
        code = tty.wait_exit()

        assert code == 0, tty.describe()
        out = tty.text()
        assert f"{SHUTTING_DOWN}: " in out, tty.describe()
        assert f"{LOCAL}shutdown {{" in out.split(SHUTTING_DOWN, 1)[1], tty.describe()
        assert "Traceback" not in tty.stderr, tty.describe()
        assert "slackonos_telemetry" not in tty.stderr, tty.describe()


def test_after_ctrl_d_at_the_prompt_shutting_down_starts_its_own_line(config_path: Path) -> None:
    write_config(config_path, {"telemetryNoticeShown": True})
    with console_in_a_terminal(config_path) as tty:
        started_at_its_prompt(tty)
        tty.type("\x04")
        assert tty.wait_exit() == 0, tty.describe()
        out = tty.text()
        assert re.search(rf"^{SHUTTING_DOWN}: ", out, re.MULTILINE), out


@pytest.mark.parametrize("posthog", [[], ["--posthog", "real"]], ids=["local", "real"])
def test_debug_banner_claims_no_host_and_nothing_is_sent(
    config_path: Path, posthog: list[str]
) -> None:
    with capture_server() as capture:
        env = {"TELEMETRY_DEBUG": "1", "TELEMETRY_HOST": capture.url}
        with cli_process(
            "--config", str(config_path), "run", "--console", *posthog, env=env
        ) as bot:
            line = telemetry_line(banner_of(bot))
            assert line.startswith("Telemetry: on"), line
            assert "sent to" not in line and "://" not in line, line
            assert "nothing is sent" in line, line
            # Debug prints each payload on stderr instead.
            assert wait_until(lambda: '"event":"startup"' in bot.stderr, WAIT), bot.describe()

            code, _ = bot.timed_exit(bot.close_stdin)

            assert code == 0, bot.describe()
            assert '"event":"shutdown"' in bot.stderr, bot.describe()
            assert LOCAL not in bot.stdout, "debug sends nothing, not even to the stand-in"
        assert capture.requests == []


@pytest.mark.parametrize("line", ["help", "telemetry help"])
def test_help_lists_each_command_on_one_line(config_path: Path, line: str) -> None:
    write_config(config_path, {"telemetryNoticeShown": True})
    with cli_process("--config", str(config_path), "run", "--console") as bot:
        banner_of(bot)
        first = "Host commands" if line == "help" else "Telemetry commands"
        answer = ask(bot, line, first)

        code, _ = bot.timed_exit(bot.close_stdin)
        assert code == 0, bot.describe()
    expected = TELEMETRY_COMMANDS + (HOST_COMMANDS if line == "help" else ())
    items = [text for text in answer[1:] if text.lstrip().startswith("•")]
    headings = [text for text in answer[1:] if not text.lstrip().startswith("•")]
    # One line a command: every line is a command or a heading, never a continuation.
    assert all(text.rstrip().endswith(":") for text in headings), answer
    assert len(items) == len(expected), answer
    for command in expected:
        naming = [text for text in items if f"`{command}" in text]
        assert len(naming) == 1, f"{command!r} is not on exactly one line: {answer}"


# -- a signal while a command is being handled --------------------------------------------------


def has_open(pid: int, path: Path) -> bool:
    folder = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(entry) == str(path):
                    return True
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_while_a_command_is_handled_still_ends_the_console(
    config_path: Path, signum: int
) -> None:
    write_config(
        config_path,
        {"telemetryNoticeShown": True, "telemetryInstanceId": INSTANCE, "telemetryEnabled": True},
    )
    lock_path = state_file(config_path, "lock")
    env = {"TELEMETRY_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT)}
    with cli_process("--config", str(config_path), "run", "--console", env=env) as bot:
        banner_of(bot)
        with held_by_another_process(lock_path):
            bot.send_line("setconfig telemetryEnabled false")
            # The save waits for the lock: the console is inside the command now.
            assert wait_until(lambda: has_open(bot.pid, lock_path), WAIT), bot.describe()
            bot.signal(signum)
            # Until the signal was handled (the wait for the lock given up, or the process
            # gone); a console that lets the command finish first keeps waiting instead.
            wait_until(lambda: bot.poll() is not None or not has_open(bot.pid, lock_path), WAIT)
        code = bot.wait_exit(within(SHUTDOWN_TIMEOUT))

        assert code == 0, bot.describe()
        assert SHUTTING_DOWN in bot.stdout, bot.describe()


# -- the demo is a demo -------------------------------------------------------------------------

SLACKONOS_EXAMPLE = Path(__file__).parent / "data" / "slackonos-config.json.example"


@pytest.mark.parametrize("named_by", ["working-dir", "SLACKONOS_CONFIG"])
def test_the_demo_leaves_a_real_bots_folder_byte_for_byte_as_it_was(
    tmp_path: Path, named_by: str
) -> None:
    bot_folder = tmp_path / "slackonos"
    config = bot_folder / "config" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_bytes(SLACKONOS_EXAMPLE.read_bytes())
    before = tree(bot_folder)
    env = {"SLACKONOS_CONFIG": str(config)} if named_by == "SLACKONOS_CONFIG" else {}

    # `make run` in the bot's folder: `run` on a terminal, no tokens, no --config.
    with cli_process("run", env=env, cwd=bot_folder, terminal=True) as console:
        assert console.wait_for_text(lambda out: PROMPT in out), console.describe()
        assert str(config) not in console.text(), "the demo names the real config as its own"
        for line in ("setconfig telemetryEnabled false", "telemetry reset-id", "telemetry"):
            shown = len(console.text())
            console.type(line + "\n")
            assert console.wait_for_text(lambda out, n=shown: "bot>" in out[n:]), console.describe()
        console.type("\x04")  # Ctrl-D
        assert console.wait_exit() == 0, console.describe()

    assert tree(bot_folder) == before, "the demo changed the real bot's folder"


def test_the_console_on_a_real_config_says_it_changes_that_file(tmp_path: Path) -> None:
    config = tmp_path / "config" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_bytes(SLACKONOS_EXAMPLE.read_bytes())

    with cli_process("--config", str(config), "run", "--console") as bot:
        banner = banner_of(bot)
        start = bot.send_line("setconfig telemetryEnabled false")
        assert bot.wait_for_output(lambda out: "saved to" in out, start=start), bot.describe()
        bot.close_stdin()
        assert bot.wait_exit() == 0, bot.describe()

    assert f"Config file: {config} (yours" in banner, banner
    assert json.loads(config.read_text(encoding="utf-8"))["telemetryEnabled"] is False
