"""An AsyncApp bot, as bolt-python's examples/async_app.py builds one, with the plugin loaded.

    python -m tests.support.hosts.async_host PORT       # Bolt's own aiohttp server, 127.0.0.1
    uvicorn tests.support.hosts.async_host:api ...      # Bolt's ASGI adapter

Environment: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL (the Slack stand-in),
and the plugin's own (SLACKONOS_CONFIG, TELEMETRY_*). Its own middleware and
listeners were added before the plugin, as a real bot's might be.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from slack_bolt.adapter.asgi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from slackonos_telemetry import load_plugins

if os.environ.get("TEST_TELEMETRY_DEBUG_LOG"):
    logging.basicConfig(level=logging.WARNING, format="%(process)d %(name)s: %(message)s")
    logging.getLogger("slackonos_telemetry").setLevel(logging.DEBUG)

app = AsyncApp(
    client=AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]
    ),
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
)


@app.middleware
async def count_requests(body: dict[str, Any], next: Any) -> Any:
    return await next()


@app.event("app_mention")
async def event_test(say: Any) -> None:
    await say("What's up?")


@app.event("message")
async def host_messages(event: dict[str, Any], say: Any) -> None:
    # The host's catch-all: every message the plugin did not claim ends here.
    if event.get("text") == "host ping":
        await say(f"host pong {os.getpid()}")


load_plugins(app, app_version="async-host-1.0")

api = AsyncSlackRequestHandler(app)

if __name__ == "__main__":
    app.start(port=int(sys.argv[1]), host="127.0.0.1")
