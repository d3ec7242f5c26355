"""How `run` refuses (docs/CONTRACT.md, "Run modes") to start. Bad usage or bad input: exit 2 and
one clear line on stderr, no traceback. A bot that cannot reach Slack: exit 1 with
a clear line. And which mode `run` picks when none is given."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.capture import ACCEPT, CaptureServer
from tests.support.cli import PROG_ERROR, error_lines, run_cli
from tests.support.processes import free_port
from tests.support.slack_api import APP_TOKEN, BOT_TOKEN, SlackStandIn
from tests.support.slack_requests import SECRET

SHUTDOWN_TIMEOUT = 1.0  # TELEMETRY_SHUTDOWN_TIMEOUT given to bots whose exit is timed

USAGE_CASES = [
    pytest.param(["--socket"], {}, ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"), id="socket-no-tokens"),
    pytest.param(
        ["--socket"], {"SLACK_BOT_TOKEN": BOT_TOKEN}, ("SLACK_APP_TOKEN",), id="socket-bot-only"
    ),
    pytest.param(
        ["--socket"],
        {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": "xoxb-not-an-app-token"},
        ("SLACK_APP_TOKEN", "xapp-"),
        id="socket-app-token-not-xapp",
    ),
    pytest.param(
        ["--http", "3000"],
        {"SLACK_BOT_TOKEN": BOT_TOKEN},
        ("SLACK_SIGNING_SECRET",),
        id="http-no-signing-secret",
    ),
    pytest.param(
        ["--http", "3000"],
        {"SLACK_SIGNING_SECRET": SECRET},
        ("SLACK_BOT_TOKEN",),
        id="http-no-bot-token",
    ),
    pytest.param(["--http", "notaport"], {}, ("notaport", "port"), id="http-not-a-port"),
    pytest.param(["--http", "0"], {}, ("'0'", "port"), id="http-port-0"),
    pytest.param(["--http", "65536"], {}, ("65536", "port"), id="http-port-too-big"),
    pytest.param(["--bind", "1.2.3.4"], {}, ("--bind", "--http"), id="bind-without-http"),
    pytest.param(["--console", "--socket"], {}, ("--console", "--socket"), id="console-and-socket"),
    pytest.param(
        ["--http", "3000", "--console"], {}, ("--console", "--http"), id="http-and-console"
    ),
]


@pytest.mark.parametrize(("args", "env", "named"), USAGE_CASES)
def test_bad_run_usage_exits_2_with_one_clear_line(
    config_path: Path, args: list[str], env: dict[str, str], named: tuple[str, ...]
) -> None:
    result = run_cli("--config", str(config_path), "run", *args, env=env)

    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith(PROG_ERROR), lines
    for word in named:
        assert word in lines[0], f"{word!r} not named in {lines[0]!r}"
    assert result.stdout == ""
    assert not config_path.exists(), "a refused start wrote the config file"


def test_run_without_tokens_or_a_terminal_refuses_instead_of_starting_the_demo(
    config_path: Path,
) -> None:
    # A container or a service manager: no tokens, stdin not a terminal. The demo would
    # read nothing, end at once and report success.
    with CaptureServer(ACCEPT) as capture:
        result = run_cli("--config", str(config_path), "run", env={"TELEMETRY_HOST": capture.url})
        assert capture.requests == []

    assert result.returncode == 2, result
    line = _one_clear_error(result.stderr)
    for named in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "--console"):
        assert named in line, line
    assert result.stdout == ""
    assert not config_path.exists(), "a refused start wrote the config file"


def test_run_console_given_explicitly_runs_on_any_stdin(config_path: Path) -> None:
    with CaptureServer(ACCEPT) as capture:
        env = {"TELEMETRY_HOST": capture.url, "TELEMETRY_SHUTDOWN_TIMEOUT": "5"}
        result = run_cli("--config", str(config_path), "run", "--console", env=env)

    assert result.returncode == 0, result
    assert "console" in result.stdout.splitlines()[0].lower(), result.stdout
    assert f"Config file: {config_path}" in result.stdout
    assert "Traceback" not in result.stderr, result.stderr


def _one_clear_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, f"expected one error line, got {errors}\n--- stderr ---\n{stderr}"
    assert "\n" not in errors[0], f"the error spans several lines:\n{errors[0]}"
    return errors[0]


def _bot_env(slack_url: str, capture: CaptureServer, **extra: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": slack_url,
        "TELEMETRY_HOST": capture.url,
        "TELEMETRY_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
        **extra,
    }


def test_run_with_both_tokens_tries_socket_mode_and_fails_clearly_without_it(
    config_path: Path,
) -> None:
    """The stand-in answers apps.connections.open with socket_mode_not_enabled."""
    with SlackStandIn() as slack, CaptureServer(ACCEPT) as capture:
        env = _bot_env(slack.url, capture, SLACK_APP_TOKEN=APP_TOKEN)
        result = run_cli("--config", str(config_path), "run", env=env)
        opened = slack.calls("apps.connections.open")

    assert [call.token for call in opened] == [APP_TOKEN], "run picked Socket Mode"
    assert result.returncode == 1, result
    error = _one_clear_error(result.stderr)
    assert "Socket Mode" in error, error


def test_http_port_in_use_fails_clearly(config_path: Path) -> None:
    with (
        SlackStandIn() as slack,
        CaptureServer(ACCEPT) as capture,
        socket.socket() as taken,
    ):
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _bot_env(slack.url, capture, SLACK_SIGNING_SECRET=SECRET)
        result = run_cli("--config", str(config_path), "run", "--http", str(port), env=env)

    assert result.returncode == 1, result
    error = _one_clear_error(result.stderr)
    assert f"127.0.0.1:{port}" in error, error


@pytest.mark.parametrize("problem", ["invalid token", "Slack unreachable"])
def test_http_bot_that_cannot_sign_in_fails_clearly(config_path: Path, problem: str) -> None:
    with SlackStandIn() as slack, CaptureServer(ACCEPT) as capture:
        if problem == "invalid token":
            slack.fail("auth.test", "invalid_auth")
            url = slack.url
        else:
            url = f"http://127.0.0.1:{free_port()}/api/"
        env = _bot_env(url, capture, SLACK_SIGNING_SECRET=SECRET)
        result = run_cli("--config", str(config_path), "run", "--http", str(free_port()), env=env)

    assert result.returncode == 1, result
    error = _one_clear_error(result.stderr)
    assert "SLACK_BOT_TOKEN" in error, error
