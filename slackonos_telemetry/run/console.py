"""The local console: the real Bolt app and the real plugin, with Slack replaced by a
stand-in on 127.0.0.1 whose messages print here. Each line typed is a message from
an admin in the admin channel."""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from slackonos_telemetry.run.local_slack import ADMIN_CHANNEL_ID, TEAM_ID, ApiCall, LocalSlack
from slackonos_telemetry.slack.admin_channel import AdminChannel, is_channel_id

ADMIN_USER_ID = "U0ADMIN01"
_SHOWN_METHODS = {
    "chat.postMessage": "bot",
    "chat.postEphemeral": "bot (to you only)",
    "chat.update": "bot (updated)",
}


def run_console(
    config_path: Path, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> int:
    from slack_bolt import App
    from slack_bolt.request import BoltRequest
    from slack_sdk import WebClient

    from slackonos_telemetry.config.settings import resolve_settings
    from slackonos_telemetry.run.host_bot import build_host_app

    reader = stdin or sys.stdin
    out = stdout or sys.stdout
    admin_id, admin_name = _admin_channel(config_path)

    def show(call: ApiCall) -> None:
        who = _SHOWN_METHODS.get(call.method)
        if who is None:
            return
        text = str(call.params.get("text") or "").replace("\n", "\n    ")
        out.write(f"{who}> {text}\n")
        out.flush()

    slack = LocalSlack({admin_id: admin_name}, on_call=show)
    try:
        client = WebClient(token="xoxb-local-console", base_url=slack.url)
        # process_before_response: each answer is printed before the next prompt.
        app = App(client=client, signing_secret="local-console", process_before_response=True)
        plugins = build_host_app(app, config_path, chatty=True)
        settings = resolve_settings(config_path)
        _banner(out, config_path, settings.enabled, settings.source, settings.host, admin_name)
        counter = itertools.count(1)
        try:
            for line in _lines(reader, out):
                if line.strip():
                    body = _message_event(line, admin_id, next(counter))
                    app.dispatch(BoltRequest(body=json.dumps(body), mode="socket_mode"))
        except KeyboardInterrupt:
            out.write("\n")
        out.write("Shutting down: the shutdown event gets at most TELEMETRY_SHUTDOWN_TIMEOUT.\n")
        out.flush()
        for plugin in plugins:
            shutdown = getattr(plugin, "shutdown", None)
            if callable(shutdown):
                shutdown()
    finally:
        slack.close()
    return 0


def _admin_channel(config_path: Path) -> tuple[str, str]:
    configured = AdminChannel(config_path).configured()
    if is_channel_id(configured):
        return configured, "admin"
    return ADMIN_CHANNEL_ID, configured


def _banner(
    out: TextIO, config_path: Path, enabled: bool, source: str, host: str, admin: str
) -> None:
    state = "on" if enabled else "off"
    where = f", sent to {host}; unsent events wait in the outbox" if enabled else ""
    out.write(
        "SlackONOS telemetry console: the real Bolt app and plugin; Slack is a local stand-in.\n"
        f"Config file: {config_path}\n"
        f"Telemetry: {state} (source: {source}){where}\n"
        "To see each payload instead of sending it: TELEMETRY_DEBUG=1 make run\n"
        f"Each line is a message from an admin in #{admin}. Type `help`; Ctrl-D quits.\n"
    )
    out.flush()


def _lines(reader: TextIO, out: TextIO) -> Any:
    interactive = reader.isatty()
    while True:
        if interactive:
            out.write("you> ")
            out.flush()
        line = reader.readline()
        if not line:
            return
        yield line.rstrip("\n")


def _message_event(text: str, channel_id: str, number: int) -> dict[str, Any]:
    now = time.time()
    return {
        "type": "event_callback",
        "team_id": TEAM_ID,
        "api_app_id": "A0LOCAL01",
        "event_id": f"Ev0LOCAL{number:06d}",
        "event_time": int(now),
        "event": {
            "type": "message",
            "channel": channel_id,
            "channel_type": "channel",
            "user": ADMIN_USER_ID,
            "text": text,
            "ts": f"{int(now)}.{number:06d}",
        },
    }
