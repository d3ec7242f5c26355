"""`run` in the local console (docs/CONTRACT.md, "Run modes"), as a person runs it: a real
subprocess, lines typed on its stdin, answers read from its stdout, telemetry
sent to a local PostHog capture server."""

from __future__ import annotations

import contextlib
import re
import signal
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.support.bots import BOOLEAN_WORDS
from tests.support.capture import ACCEPT, REFUSE, CaptureServer
from tests.support.cli import cli_process
from tests.support.files import outbox_events, read_config, write_config
from tests.support.processes import WAIT, Process
from tests.support.waiting import within

SHUTDOWN_TIMEOUT = 1.0  # TELEMETRY_SHUTDOWN_TIMEOUT given to bots whose exit is timed

OPT_OUT_ATTEMPTS = 4
STATUS_ON_DEFAULT = re.compile(r"^bot> Telemetry is on \(source: default\)", re.MULTILINE)
# The whole status, up to its last line ("To turn it off: ...").
FULL_STATUS_ON_DEFAULT = re.compile(
    r"^bot> Telemetry is on \(source: default\)(?:\n    .*)*\n    To turn it off", re.MULTILINE
)


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    server = CaptureServer(ACCEPT)
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def console(
    config_path: Path, capture: CaptureServer, shutdown_timeout: float = SHUTDOWN_TIMEOUT
) -> Iterator[Process]:
    env = {"TELEMETRY_HOST": capture.url, "TELEMETRY_SHUTDOWN_TIMEOUT": str(shutdown_timeout)}
    args = ("--config", str(config_path), "run", "--console", "--posthog", "real")
    with cli_process(*args, env=env) as bot:
        assert bot.wait_for_output(lambda out: "Ctrl-D" in out or "help" in out), bot.describe()
        yield bot


def ask(bot: Process, line: str, answer: re.Pattern[str] | str) -> str:
    """Type ``line``; the bot's answer (a `bot>` line and its indented lines) that
    matches ``answer``, once printed. Other output (the first-run notice) is skipped."""
    start = bot.send_line(line)
    pattern = re.compile(re.escape(answer)) if isinstance(answer, str) else answer

    def matching(output: str) -> str | None:
        blocks = re.findall(r"^bot> .*(?:\n    .*)*", output, re.MULTILINE)
        return next((block for block in blocks if pattern.search(block)), None)

    assert bot.wait_for_output(lambda out: matching(out) is not None, WAIT, start), (
        f"no answer matching {pattern.pattern!r} to {line!r}\n{bot.describe()}"
    )
    found = matching("\n".join(bot.lines()[start:]))
    assert found is not None
    return found


def test_console_answers_each_line_and_delivers_shutdown_on_eof(
    config_path: Path, capture: CaptureServer
) -> None:
    # A generous deadline: this test is about what is delivered, not how fast.
    with console(config_path, capture, shutdown_timeout=5) as bot:
        banner = bot.stdout
        assert f"Config file: {config_path}" in banner, banner
        assert re.search(r"Telemetry: on \(source: default\)", banner), banner
        assert "TELEMETRY_DEBUG" in banner, banner

        status = ask(bot, "telemetry status", FULL_STATUS_ON_DEFAULT)
        assert "Instance ID:" in status and "Outbox:" in status, status

        error = ask(bot, "setconfig telemetryEnabled maybe", "not a boolean")
        assert "maybe" in error
        for word in BOOLEAN_WORDS:
            assert re.search(rf"\b{word}\b", error), f"{word!r} missing from {error!r}"
        assert "telemetryEnabled" not in _config_or_empty(config_path)

        help_text = ask(bot, "help", "telemetry reset-id")
        for command in (
            "telemetry status",
            "telemetry preview",
            "telemetry reset-id",
            "setconfig telemetryEnabled",
        ):
            assert command in help_text, help_text

        code, _ = bot.timed_exit(bot.close_stdin)

        assert code == 0, bot.describe()
        assert "Traceback" not in bot.stderr, bot.describe()
        assert capture.wait_for_events(1, "shutdown", timeout=1), (
            f"no shutdown event at the capture server: {capture.events}\n{bot.describe()}"
        )
        (shutdown,) = capture.events_named("shutdown")
        assert shutdown["distinct_id"] == read_config(config_path)["telemetryInstanceId"]
        assert not [event for event in outbox_events(config_path) if event["event"] == "shutdown"]


def test_console_setconfig_saves_to_the_file_and_stops_sending(
    config_path: Path, capture: CaptureServer
) -> None:
    write_config(config_path, {"gongLimit": 3, "telemetryNoticeShown": True})
    with console(config_path, capture) as bot:
        answer = ask(bot, "setconfig telemetryEnabled false", "saved to")
        assert str(config_path) in answer, answer
        assert "false" in answer, answer

        saved = read_config(config_path)
        assert saved["telemetryEnabled"] is False
        assert saved["gongLimit"] == 3, "the host's keys are kept"

        status = ask(bot, "telemetry status", "Telemetry is off")
        assert "Telemetry is off (source: config)" in status, status
        assert "saved by the host bot" not in bot.stdout, "the host answered the plugin's command"

        code, _ = bot.timed_exit(bot.close_stdin)

        assert code == 0, bot.describe()
        assert read_config(config_path)["telemetryEnabled"] is False
        assert not capture.events_named("shutdown"), "a shutdown event was sent after opt-out"


def test_console_with_posthog_unreachable_answers_and_exits_within_the_deadline(
    config_path: Path,
) -> None:
    refusing = CaptureServer(REFUSE)
    try:
        with console(config_path, refusing) as bot:
            ask(bot, "telemetry status", STATUS_ON_DEFAULT)
            ask(bot, "telemetry preview", "heartbeat")

            code, took = bot.timed_exit(bot.close_stdin)

            assert code == 0, bot.describe()
            assert took <= within(SHUTDOWN_TIMEOUT), (
                f"EOF to exit took {took:.2f} s with TELEMETRY_SHUTDOWN_TIMEOUT="
                f"{SHUTDOWN_TIMEOUT:g}\n{bot.describe()}"
            )
            assert "Traceback" not in bot.stderr, bot.describe()
            left = {event["event"] for event in outbox_events(config_path)}
            assert "shutdown" in left, f"outbox after exit: {left}"
            assert not refusing.events
    finally:
        refusing.close()


def test_console_ctrl_c_shuts_down_gracefully(config_path: Path, capture: CaptureServer) -> None:
    write_config(config_path, {"telemetryNoticeShown": True})
    with console(config_path, capture) as bot:
        ask(bot, "telemetry status", STATUS_ON_DEFAULT)
        # The SDK is loaded once the startup event is in: the deadline is for sending.
        assert capture.wait_for_events(1, "startup", timeout=WAIT), bot.describe()

        code, _ = bot.timed_exit(signal.SIGINT)

        assert code == 0, bot.describe()
        assert "Traceback" not in bot.stderr, bot.describe()
        assert capture.events_named("shutdown"), bot.describe()


def test_console_opt_out_as_the_first_line_leaves_no_event_behind(
    tmp_path: Path, capture: CaptureServer
) -> None:
    """docs/CONTRACT.md, "Off means off": disabling empties the outbox at once, and no
    event is made while off. An admin who opts out the moment the bot starts, and stops
    it right after, must find nothing waiting. The tracker's first event races with the
    opt-out, so this tries a few fresh starts."""
    env = {"TELEMETRY_HOST": capture.url, "TELEMETRY_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT)}
    for attempt in range(OPT_OUT_ATTEMPTS):
        config_path = tmp_path / f"bot{attempt}" / "config.json"
        write_config(config_path, {"telemetryNoticeShown": True})
        args = ("--config", str(config_path), "run", "--console", "--posthog", "real")
        with cli_process(*args, env=env) as bot:
            bot.send_line("setconfig telemetryEnabled false")
            bot.send_line("telemetry status")
            code, _ = bot.timed_exit(bot.close_stdin)
            assert code == 0, bot.describe()
            assert "Telemetry is off (source: config)" in bot.stdout, bot.describe()
        assert read_config(config_path)["telemetryEnabled"] is False
        left = outbox_events(config_path)
        opted_out_at = config_path.stat().st_mtime
        assert left == [], (
            f"start {attempt + 1}: after the opt-out (config saved at "
            f"{datetime.fromtimestamp(opted_out_at, timezone.utc).isoformat()}) the outbox "
            f"holds {[(event['event'], event['timestamp']) for event in left]}"
        )
        assert not capture.events_named("shutdown")


def _config_or_empty(path: Path) -> dict[str, object]:
    return read_config(path) if path.exists() else {}
