"""The CLI as a user runs it (docs/CONTRACT.md, "CLI"): ``python -m slackonos_telemetry`` (or
the console script) as a real process in a clean environment, run to its end or kept
running (``run``)."""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.support.environment import PYTHON, clean_environ
from tests.support.processes import Process, python_module, started

CLI_TIMEOUT_SECONDS = 60
PROG_ERROR = "slackonos-telemetry: error: "
CONSOLE_SCRIPT = Path(PYTHON).parent / "slackonos-telemetry"


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = CLI_TIMEOUT_SECONDS,
    program: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m slackonos_telemetry ARGS` (or ``program ARGS``) in a clean environment
    plus ``env``, run to its end with nothing on stdin (bounded)."""
    return subprocess.run(
        [*(program or python_module("slackonos_telemetry")), *args],
        env=clean_environ(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_console_script(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed console script, ``slackonos-telemetry ARGS``."""
    return run_cli(*args, env=env, program=[str(CONSOLE_SCRIPT)])


def cli(
    config_path: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> str:
    """A command on ``config_path`` that must succeed; its stdout."""
    result = run_cli("--config", str(config_path), *args, env=env, timeout=timeout)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def json_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON object a command that succeeded printed."""
    assert result.returncode == 0, (result.stdout, result.stderr)
    data = json.loads(result.stdout)
    assert isinstance(data, dict), data
    return data


def status_json(
    config_path: Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> dict[str, Any]:
    """``status --json`` of ``config_path``."""
    return json_of(
        run_cli("--config", str(config_path), "status", "--json", env=env, timeout=timeout)
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI's failure as a person sees it: exactly one line on stderr, its own, no
    traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(PROG_ERROR), lines[0]
    return lines[0]


def error_lines(stderr: str) -> list[str]:
    """The CLI's own error lines, each with any lines that continue it (a multi-line
    message) joined to it."""
    found: list[str] = []
    lines = stderr.splitlines()
    for number, line in enumerate(lines):
        if line.startswith(PROG_ERROR):
            continuation = itertools.takewhile(
                lambda text: not _looks_like_log_line(text), lines[number + 1 :]
            )
            found.append("\n".join([line, *continuation]))
    return found


def _looks_like_log_line(text: str) -> bool:
    # logging.basicConfig in run: "2026-01-01 12:00:00,000 LEVEL name: message"
    return len(text) > 20 and text[:4].isdigit() and text[4] == "-"


@contextlib.contextmanager
def cli_process(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, **options: Any
) -> Iterator[Process]:
    """`python -m slackonos_telemetry ARGS` kept running (``run``), its output read as it
    comes (``options``: ``Process``'s, such as ``terminal``); stopped on the way out."""
    with started(python_module("slackonos_telemetry", *args), env=env, cwd=cwd, **options) as bot:
        yield bot
