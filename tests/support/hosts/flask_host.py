"""A sync App bot behind Flask, as bolt-python's flask-gunicorn example builds one, with the
plugin loaded; served by gunicorn's sync workers:

    gunicorn -w 3 -b 127.0.0.1:PORT tests.support.hosts.flask_host:flask_app

Environment: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL (the Slack stand-in),
and the plugin's own (SLACKONOS_CONFIG, TELEMETRY_*).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, request
from slack_bolt import App
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_sdk import WebClient

from slackonos_telemetry import load_plugins

if os.environ.get("TEST_TELEMETRY_DEBUG_LOG"):
    logging.basicConfig(level=logging.WARNING, format="%(process)d %(name)s: %(message)s")
    logging.getLogger("slackonos_telemetry").setLevel(logging.DEBUG)

app = App(
    client=WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]),
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
)


@app.event("message")
def host_messages(event: dict[str, Any], say: Any) -> None:
    # The host's catch-all: every message the plugin did not claim ends here.
    if event.get("text") == "host ping":
        say(f"host pong {os.getpid()}")


load_plugins(app, app_version="flask-host-1.0")

flask_app = Flask(__name__)
handler = SlackRequestHandler(app)


@flask_app.route("/slack/events", methods=["POST"])
def slack_events() -> Any:
    return handler.handle(request)
