"""`slackonos-telemetry run`: the host bot with its plugins, in Socket Mode, over HTTP,
or in a local console that needs no Slack workspace at all."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

CONSOLE = "console"
SOCKET = "socket"
HTTP = "http"

BOT_TOKEN = "SLACK_BOT_TOKEN"
APP_TOKEN = "SLACK_APP_TOKEN"
SIGNING_SECRET = "SLACK_SIGNING_SECRET"
API_URL = "SLACK_API_URL"
SOCKET_CLOSE_SECONDS = 0.5


class RunError(Exception):
    """A reason the bot cannot start, in one line."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class RunOptions:
    mode: str | None
    port: int | None = None
    bind: str = "127.0.0.1"


def choose_mode(options: RunOptions, env: Mapping[str, str]) -> str:
    if options.mode:
        return options.mode
    if env.get(BOT_TOKEN) and env.get(APP_TOKEN):
        return SOCKET
    return CONSOLE


def check_environment(mode: str, env: Mapping[str, str]) -> None:
    """One clear line (exit 2) for each thing the chosen mode needs and lacks."""
    needed = {SOCKET: (BOT_TOKEN, APP_TOKEN), HTTP: (BOT_TOKEN, SIGNING_SECRET)}.get(mode, ())
    missing = [name for name in needed if not env.get(name, "").strip()]
    if missing:
        raise RunError(f"--{mode} needs {' and '.join(missing)} set in the environment", 2)
    if mode == SOCKET and not env[APP_TOKEN].startswith("xapp-"):
        raise RunError(f"{APP_TOKEN} must be an app-level token (xapp-...)", 2)


def run(options: RunOptions, config_path: Path, env: Mapping[str, str] | None = None) -> int:
    environ = os.environ if env is None else env
    mode = choose_mode(options, environ)
    check_environment(mode, environ)
    if mode == CONSOLE:
        from slackonos_telemetry.run.console import run_console

        return run_console(config_path)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = _stop_on_signals()
    app = _slack_app(mode, environ)
    from slackonos_telemetry.run.host_bot import build_host_app

    plugins = build_host_app(app, config_path)
    if mode == SOCKET:
        return _serve_socket_mode(app, environ[APP_TOKEN], stop, plugins)
    if options.port is None:
        raise RunError("--http needs a PORT", 2)
    return _serve_http(app, options.bind, options.port, stop, plugins)


def _stop_on_signals() -> threading.Event:
    """The host's own handlers, installed before the plugins so theirs run first
    and then hand over to these: the bot stops cleanly, exit code 0."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


def _slack_app(mode: str, env: Mapping[str, str]) -> Any:
    from slack_bolt import App
    from slack_bolt.error import BoltError
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError, SlackClientError

    token = env[BOT_TOKEN]
    client = WebClient(token=token, base_url=env.get(API_URL) or WebClient.BASE_URL)
    try:
        return App(
            client=client,
            signing_secret=env.get(SIGNING_SECRET) if mode == HTTP else None,
        )
    except (BoltError, SlackApiError, SlackClientError, OSError) as exc:
        raise RunError(
            f"could not sign in to Slack with {BOT_TOKEN}: {_one_line(exc)}", 1
        ) from None


def _serve_socket_mode(app: Any, app_token: str, stop: threading.Event, plugins: list[Any]) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(app, app_token)
    try:
        handler.connect()  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise RunError(f"could not open a Socket Mode connection: {_one_line(exc)}", 1) from None
    log.info("connected in Socket Mode; Ctrl-C or SIGTERM stops")
    try:
        _wait(stop)
    finally:
        _shutdown(plugins)
        _close_within(handler, SOCKET_CLOSE_SECONDS)
    return 0


def _close_within(handler: Any, seconds: float) -> None:
    # slack_sdk's close() waits for a lock its receiver thread holds while it blocks
    # up to 3 s in recv(): close from a daemon thread and stop waiting after a moment.
    closer = threading.Thread(target=handler.close, name="socket-mode-close", daemon=True)
    closer.start()
    closer.join(seconds)


def _serve_http(app: Any, bind: str, port: int, stop: threading.Event, plugins: list[Any]) -> int:
    from slackonos_telemetry.run.http_server import BoltHttpServer

    try:
        server = BoltHttpServer(app, bind, port)
    except OSError as exc:
        raise RunError(f"cannot listen on {bind}:{port}: {exc.strerror or exc}", 1) from None
    server.start()
    log.info("listening on %s; Ctrl-C or SIGTERM stops", server.url)
    try:
        _wait(stop)
    finally:
        server.stop()
        _shutdown(plugins)
    return 0


def _one_line(exc: BaseException) -> str:
    error = getattr(getattr(exc, "response", None), "get", None)
    if callable(error) and error("error"):
        return f"Slack answered {error('error')!r}"
    return " ".join(str(exc).split())


def _wait(stop: threading.Event) -> None:
    # A timed wait, so signal handlers run promptly on the main thread.
    while not stop.wait(0.5):
        pass


def _shutdown(plugins: list[Any]) -> None:
    for plugin in plugins:
        shutdown = getattr(plugin, "shutdown", None)
        if callable(shutdown):
            shutdown()
