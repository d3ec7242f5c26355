"""`slackonos-telemetry`: see and change telemetry from a shell (docs/CONTRACT.md, "CLI").

Exit codes: 0 done, 1 failed, 2 bad usage or bad input, each failure with one
line on stderr and never a traceback (a read-only file system, a full disk and a
closed pipe included). Reading commands (status, preview) write nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from slackonos_telemetry.config.keys import CONFIG_ENV_VAR
from slackonos_telemetry.config.paths import resolve_config_path
from slackonos_telemetry.config.store import ConfigReadError, ConfigWriteError
from slackonos_telemetry.telemetry.events import EVENT_NAMES, EventName

PROG = "slackonos-telemetry"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
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
    """The console script: run one command; returns its exit code."""
    started = time.monotonic()
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Values from another program's config may hold lone surrogates: show them escaped.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if callable(reconfigure):
            reconfigure(errors="backslashreplace")
    try:
        args = _build_parser().parse_args(args_list)
        args.started = started
        command: Callable[[argparse.Namespace], int] = args.handler
        code = command(args)
        sys.stdout.flush()
        return code
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ConfigReadError as exc:
        return _fail(f"{exc}; nothing was changed", EXIT_USAGE)
    except ConfigWriteError as exc:
        return _fail(f"{exc}; nothing was changed", EXIT_FAILED)
    except CommandFailed as exc:
        return _fail(str(exc), EXIT_FAILED)
    except BrokenPipeError:
        # The reader went away (`status --json | head -c1`): say so once, and keep the
        # interpreter's own last flush from printing a traceback.
        _silence_stdout()
        return _fail("standard output was closed before everything was written", EXIT_FAILED)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), EXIT_FAILED)
    except Exception as exc:  # the edge where a person calls us: one line, never a traceback
        return _fail(f"unexpected {type(exc).__name__}: {exc}", EXIT_FAILED)


def _fail(message: str, code: int) -> int:
    try:
        sys.stderr.write(f"{PROG}: error: {' '.join(message.split())}\n")
        sys.stderr.flush()
    except OSError:
        pass
    return code


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _build_parser() -> argparse.ArgumentParser:
    from slackonos_telemetry._version import __version__

    parser = _Parser(
        prog=PROG,
        description="See and change the anonymous usage telemetry of a SlackONOS bot.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    config_help = f"config file (default: ${CONFIG_ENV_VAR}, else ./config/config.json)"
    parser.add_argument("--config", metavar="PATH", help=config_help)
    # A bare `slackonos-telemetry` shows the status, as `brew analytics` does.
    parser.set_defaults(handler=_status, json=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

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
        help=f"give up after S seconds, everything included (default {DEFAULT_FLUSH_TIMEOUT:g})",
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
    run.add_argument(
        "--posthog",
        choices=("local", "real"),
        help="where events go: a local stand-in that prints them (the console's default) "
        "or the configured PostHog host (the default otherwise)",
    )
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
    from slackonos_telemetry.telemetry.opt_out import save_enabled

    print("\n".join(save_enabled(_config_path(args), enabled, os.environ).lines()))
    return EXIT_OK


def _reset_id(args: argparse.Namespace) -> int:
    from slackonos_telemetry.telemetry.opt_out import reset_instance_id

    print("\n".join(reset_instance_id(_config_path(args), os.environ).lines()))
    return EXIT_OK


def _preview(args: argparse.Namespace) -> int:
    from slackonos_telemetry.admin import preview_event

    preview = preview_event(_config_path(args), EventName(args.event))
    # Flushed first: into a closed pipe, the error is the one line on stderr.
    print(json.dumps(preview.message, indent=2), flush=True)
    for name, source in preview.sources.items():
        sys.stderr.write(f"{name}: {source}\n")
    if not preview.decision.enabled:
        sys.stderr.write(f"Telemetry is off ({preview.decision.source}): nothing would be sent.\n")
    return EXIT_OK


def _flush(args: argparse.Namespace) -> int:
    # The deadline counts from the command's start: reading the files and loading
    # the SDK are part of it.
    deadline = args.started + args.timeout
    from slackonos_telemetry.config.settings import resolve_settings
    from slackonos_telemetry.telemetry import consent, opt_out
    from slackonos_telemetry.telemetry.delivery import Delivery
    from slackonos_telemetry.telemetry.identity import instance_id_now
    from slackonos_telemetry.telemetry.outbox import Outbox

    path = _config_path(args)
    settings = resolve_settings(path)
    outbox = Outbox(settings.state)
    decision = consent.decide(settings)
    if decision.consent is consent.Consent.OFF:
        cleared = opt_out.discard_waiting(settings, outbox)
        if cleared.problem:
            raise CommandFailed(
                f"telemetry is off ({decision.source}), and the outbox could not be emptied: "
                f"{cleared.problem}; nothing in it is sent"
            )
        print(
            f"Telemetry is off ({decision.source}): discarded {cleared.discarded} event(s), "
            "sent none."
        )
        return EXIT_OK
    outbox.trim()  # also sets a damaged file aside, and takes over an older version's
    waiting = outbox.stats()
    if not waiting.pending:
        print("Nothing is waiting: the outbox is empty.")
        return EXIT_OK
    delivery = Delivery(
        outbox, lambda: resolve_settings(path), lambda: instance_id_now(resolve_settings(path))
    )
    result = delivery.drain(deadline)
    left = outbox.stats().pending
    if result.delivered or result.rejected:
        print(f"Sent {result.delivered} event(s), dropped {result.rejected} refused by PostHog.")
    if left:
        last = result.last
        if last is not None and (last.held or (last.failure and last.failure.unreachable)):
            why = last.describe()  # held back, or failed at once: no use waiting longer
        else:
            why = f"still waiting after {args.timeout:g} s"
            if last is not None and last.failure is not None:
                failure = last.failure
                if failure.status is None and result.answered is not None:
                    failure = result.answered  # a last try cut short: what the server said
                why += f" ({failure.detail})"
        raise CommandFailed(f"{why}; {left} event(s) kept for the next try")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from slackonos_telemetry.run.runner import RunError, RunMode, RunOptions, run

    if args.bind is not None and args.port is None:
        raise UsageError("--bind goes with --http PORT")
    mode = RunMode.HTTP if args.port is not None else RunMode(args.mode) if args.mode else None
    options = RunOptions(
        mode=mode,
        port=args.port,
        bind=args.bind or "127.0.0.1",
        local_posthog=None if args.posthog is None else args.posthog == "local",
        config_given=args.config is not None,
    )
    try:
        return run(options, _config_path(args))
    except RunError as exc:
        if exc.exit_code == EXIT_USAGE:
            raise UsageError(str(exc)) from None
        raise CommandFailed(str(exc)) from None
