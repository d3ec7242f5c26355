"""`slackonos-telemetry`: see and change telemetry from a shell.

Exit codes: 0 done, 1 failed, 2 bad usage or bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from slackonos_telemetry.config.keys import CONFIG_ENV_VAR
from slackonos_telemetry.config.paths import resolve_config_path
from slackonos_telemetry.config.store import ConfigReadError, ConfigWriteError
from slackonos_telemetry.telemetry.events import EVENT_NAMES

PROG = "slackonos-telemetry"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_FLUSH_TIMEOUT = 10.0


class UsageError(Exception):
    """Bad usage or bad input: reported in one line, exit code 2."""


class CommandFailed(Exception):
    """The command could not do its work: reported in one line, exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        if "invalid choice" in message and self._subparsers is not None:
            word = message.split("invalid choice: ", 1)[1].split(" ", 1)[0]
            message = f"unknown command {word}"
        raise UsageError(f"{message} (see '{PROG} --help')")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _build_parser().parse_args(args_list)
        command: Callable[[argparse.Namespace], int] = args.handler
        return command(args)
    except UsageError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except ConfigReadError as exc:
        _fail(f"{exc}; nothing was changed")
        return EXIT_USAGE
    except (ConfigWriteError, CommandFailed) as exc:
        _fail(f"{exc}; nothing was changed" if isinstance(exc, ConfigWriteError) else str(exc))
        return EXIT_FAILED
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    from slackonos_telemetry._version import __version__

    parser = _Parser(
        prog=PROG,
        description="See and change the anonymous usage telemetry of a SlackONOS bot.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    config_help = f"config file (default: ${CONFIG_ENV_VAR}, else ./config/config.json)"
    parser.add_argument("--config", metavar="PATH", help=config_help)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser, required=True
    )

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str) -> _Parser:
        sub: _Parser = commands.add_parser(name, help=text, description=text)
        # Also after the command, so `status --config X` works as well as `--config X status`.
        sub.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
        sub.set_defaults(handler=handler)
        return sub

    status = command("status", _status, "show the settings and where each one comes from")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    command("enable", _enable, "turn telemetry on (saved in the config file)")
    command("disable", _disable, "turn telemetry off and discard waiting events")
    command("reset-id", _reset_id, "make a new instance ID and discard waiting events")
    preview = command("preview", _preview, "print the exact JSON of an event, sending nothing")
    preview.add_argument("event", nargs="?", default="heartbeat", choices=EVENT_NAMES)
    flush = command("flush", _flush, "send the waiting events now")
    flush.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_FLUSH_TIMEOUT,
        metavar="S",
        help=f"give up after S seconds (default {DEFAULT_FLUSH_TIMEOUT:g})",
    )
    run = command("run", _run, "run the bot with its plugins (console when no Slack tokens)")
    modes = run.add_mutually_exclusive_group()
    modes.add_argument(
        "--console",
        dest="mode",
        action="store_const",
        const="console",
        help="a local console, no Slack needed (default without tokens)",
    )
    modes.add_argument(
        "--socket",
        dest="mode",
        action="store_const",
        const="socket",
        help="Socket Mode (default with SLACK_BOT_TOKEN and SLACK_APP_TOKEN)",
    )
    modes.add_argument(
        "--http",
        dest="port",
        type=_port,
        metavar="PORT",
        help="Events API over HTTP on PORT, path /slack/events",
    )
    run.add_argument("--bind", metavar="ADDR", help="address for --http (default 127.0.0.1)")
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _config_path(args: argparse.Namespace) -> Path:
    path = resolve_config_path(args.config)
    if path.is_dir():
        raise UsageError(f"config path {path} is a directory; give the path of a JSON file")
    return path


def _status(args: argparse.Namespace) -> int:
    from slackonos_telemetry.admin import collect_status

    report = collect_status(_config_path(args))
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print("\n".join(report.text_lines()))
    return EXIT_OK


def _enable(args: argparse.Namespace) -> int:
    return _save_enabled(args, True)


def _disable(args: argparse.Namespace) -> int:
    return _save_enabled(args, False)


def _save_enabled(args: argparse.Namespace, enabled: bool) -> int:
    from slackonos_telemetry.admin import save_enabled

    path = _config_path(args)
    change = save_enabled(path, enabled)
    word = "true" if enabled else "false"
    print(f"telemetryEnabled: {change.previous_text} -> {word}, saved to {path}")
    if change.discarded:
        print(f"Discarded {change.discarded} waiting event(s): they will never be sent.")
    settings = change.settings
    if settings.enabled != enabled:
        state = "on" if settings.enabled else "off"
        print(f"Note: telemetry stays {state}: {settings.reason or settings.source}")
    return EXIT_OK


def _reset_id(args: argparse.Namespace) -> int:
    from slackonos_telemetry.admin import reset_instance_id

    path = _config_path(args)
    change = reset_instance_id(path)
    print(f"Instance ID: {change.previous or '(none)'} -> {change.current}, saved to {path}")
    if change.discarded:
        print(f"Discarded {change.discarded} waiting event(s) that carried the old ID.")
    return EXIT_OK


def _preview(args: argparse.Namespace) -> int:
    from slackonos_telemetry.telemetry.tracker import Tracker

    tracker = Tracker(_config_path(args))
    settings = tracker.settings()
    print(json.dumps(tracker.preview(args.event), indent=2))
    if not settings.enabled:
        sys.stderr.write(f"Telemetry is off ({settings.source}): nothing would be sent.\n")
    return EXIT_OK


def _flush(args: argparse.Namespace) -> int:
    import time

    from slackonos_telemetry.telemetry.tracker import Tracker

    tracker = Tracker(_config_path(args))
    settings = tracker.settings()
    waiting = tracker.outbox.stats().pending
    if not settings.enabled:
        discarded = tracker.outbox.clear()
        print(f"Telemetry is off ({settings.source}): discarded {discarded} event(s), sent none.")
        return EXIT_OK
    if settings.debug:
        raise CommandFailed(
            f"TELEMETRY_DEBUG is on, so nothing is sent; {waiting} event(s) still waiting"
        )
    result = tracker.delivery.drain(time.monotonic() + args.timeout)
    left = tracker.outbox.stats().pending
    print(f"Sent {result.delivered} event(s), dropped {result.rejected} refused by PostHog.")
    if left:
        last = result.last
        why = last.failure.detail if last and last.failure else (last.stopped_by if last else "")
        raise CommandFailed(f"{left} event(s) still waiting after {args.timeout:g} s ({why})")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from slackonos_telemetry.run.runner import HTTP, RunError, RunOptions, run

    if args.bind is not None and args.port is None:
        raise UsageError("--bind goes with --http PORT")
    mode = HTTP if args.port is not None else args.mode
    options = RunOptions(mode=mode, port=args.port, bind=args.bind or "127.0.0.1")
    try:
        return run(options, _config_path(args))
    except RunError as exc:
        if exc.exit_code == EXIT_USAGE:
            raise UsageError(str(exc)) from None
        raise CommandFailed(str(exc)) from None
