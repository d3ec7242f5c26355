"""`slackonos-telemetry run`: the host bot with its plugins, in Socket Mode, over HTTP,
or in a local console that needs no Slack workspace at all (docs/CONTRACT.md, "Run modes")."""

from __future__ import annotations

import enum
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from slackonos_telemetry.config.keys import TELEMETRY_HOST, TELEMETRY_STATE_DIR
from slackonos_telemetry.run.signals import wait_for

log = logging.getLogger(__name__)

BOT_TOKEN = "SLACK_BOT_TOKEN"
APP_TOKEN = "SLACK_APP_TOKEN"
SIGNING_SECRET = "SLACK_SIGNING_SECRET"
API_URL = "SLACK_API_URL"


class RunMode(enum.Enum):
    CONSOLE = "console"
    SOCKET = "socket"
    HTTP = "http"


class RunError(Exception):
    """A reason the bot cannot start, in one line."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class RunOptions:
    mode: RunMode | None
    port: int | None = None
    bind: str = "127.0.0.1"
    local_posthog: bool | None = None  # None: the mode's default (local for the console)
    config_given: bool = False  # --config named the file (the console then uses it)


def choose_mode(options: RunOptions, env: Mapping[str, str], interactive: bool) -> RunMode:
    if options.mode:
        return options.mode
    if env.get(BOT_TOKEN) and env.get(APP_TOKEN):
        return RunMode.SOCKET
    if not interactive:
        # A container or a service manager: the demo would read no input and end at
        # once, reporting success. Say what is missing instead.
        raise RunError(
            f"no Slack tokens and no terminal: set {BOT_TOKEN} and {APP_TOKEN} for Socket "
            f"Mode (or run --http PORT with {BOT_TOKEN} and {SIGNING_SECRET}); "
            "run --console to start the local demo anyway",
            2,
        )
    return RunMode.CONSOLE


def check_environment(mode: RunMode, env: Mapping[str, str]) -> None:
    """One clear line (exit 2) for each thing the chosen mode needs and lacks."""
    needed = {
        RunMode.SOCKET: (BOT_TOKEN, APP_TOKEN),
        RunMode.HTTP: (BOT_TOKEN, SIGNING_SECRET),
    }.get(mode, ())
    missing = [name for name in needed if not env.get(name, "").strip()]
    if missing:
        raise RunError(f"--{mode.value} needs {' and '.join(missing)} set in the environment", 2)
    if mode is RunMode.SOCKET and not env[APP_TOKEN].startswith("xapp-"):
        raise RunError(f"{APP_TOKEN} must be an app-level token (xapp-...)", 2)


def run(options: RunOptions, config_path: Path, env: Mapping[str, str] | None = None) -> int:
    environ = os.environ if env is None else env
    mode = choose_mode(options, environ, _stdin_is_a_terminal())
    check_environment(mode, environ)
    if mode is RunMode.CONSOLE:
        from slackonos_telemetry.run.console import run_console

        local = True if options.local_posthog is None else options.local_posthog
        given = config_path if options.config_given else None
        return run_console(given, local_posthog=local)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = _stop_on_signals()
    posthog = _local_posthog() if options.local_posthog else None
    try:
        app = _slack_app(mode, environ)
        from slackonos_telemetry.run.host_bot import build_host_app

        build_host_app(app, config_path)
        if mode is RunMode.SOCKET:
            return _serve_socket_mode(app, environ[APP_TOKEN], stop)
        if options.port is None:
            raise RunError("--http needs a PORT", 2)
        return _serve_http(app, options.bind, options.port, stop)
    finally:
        if posthog is not None:
            posthog.close()


def _stdin_is_a_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def _local_posthog() -> Any:
    from slackonos_telemetry.run.local_posthog import LocalPostHog

    def show(event: dict[str, Any]) -> None:
        log.info("→ PostHog (local): %s %s", event.get("event"), event)

    posthog = LocalPostHog(show)
    os.environ[TELEMETRY_HOST] = posthog.url
    # Its own state too: events a real run left waiting must not go to the stand-in.
    os.environ[TELEMETRY_STATE_DIR] = tempfile.mkdtemp(prefix="slackonos-local-posthog-")
    return posthog


def _stop_on_signals() -> threading.Event:
    """The host's own handlers, installed before the plugins so theirs run first
    and then hand over to these: the bot stops cleanly, exit code 0."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


def _slack_app(mode: RunMode, env: Mapping[str, str]) -> Any:
    from slack_bolt import App
    from slack_bolt.error import BoltError
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError, SlackClientError

    token = env[BOT_TOKEN]
    client = WebClient(token=token, base_url=env.get(API_URL) or WebClient.BASE_URL)
    try:
        return App(
            client=client,
            signing_secret=env.get(SIGNING_SECRET) if mode is RunMode.HTTP else None,
        )
    except (BoltError, SlackApiError, SlackClientError, OSError) as exc:
        raise RunError(
            f"could not sign in to Slack with {BOT_TOKEN}: {_one_line(exc)}", 1
        ) from None


def _serve_socket_mode(app: Any, app_token: str, stop: threading.Event) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(app, app_token)
    try:
        handler.connect()  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise RunError(f"could not open a Socket Mode connection: {_one_line(exc)}", 1) from None
    log.info("connected in Socket Mode; Ctrl-C or SIGTERM stops")
    wait_for(stop)
    _shutdown()
    # slack_sdk's close() waits for its receiver thread, which may block in recv()
    # for seconds, and its executor threads are joined at exit: once the shutdown
    # event is out, nothing of ours is left to wait for, so the process ends here.
    threading.Thread(target=handler.close, name="socket-mode-close", daemon=True).start()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(0)


def _serve_http(app: Any, bind: str, port: int, stop: threading.Event) -> int:
    from slackonos_telemetry.run.http_server import BoltHttpServer

    try:
        server = BoltHttpServer(app, bind, port)
    except OSError as exc:
        raise RunError(f"cannot listen on {bind}:{port}: {exc.strerror or exc}", 1) from None
    server.start()
    log.info("listening on %s; Ctrl-C or SIGTERM stops", server.url)
    try:
        wait_for(stop)
    finally:
        server.stop()
        _shutdown()
    return 0


def _shutdown() -> None:
    from slackonos_telemetry.telemetry import shutdown

    shutdown.run("explicit")


def _one_line(exc: BaseException) -> str:
    error = getattr(getattr(exc, "response", None), "get", None)
    if callable(error) and error("error"):
        return f"Slack answered {error('error')!r}"
    return " ".join(str(exc).split())
