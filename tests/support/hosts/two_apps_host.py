"""Two Bolt apps with two config files in one process, each with the plugin registered, both
idle until a signal. Prints "ready" once both plugins have started.

    python -m tests.support.hosts.two_apps_host CONFIG_A CONFIG_B
"""

from __future__ import annotations

import sys
import time

from slack_bolt import App
from slack_sdk import WebClient

import slackonos_telemetry

LIFETIME_SECONDS = 60.0


def main() -> int:
    plugins = []
    for config in sys.argv[1:3]:
        # A closed loopback port: nothing here may reach Slack.
        client = WebClient(token="xoxb-two-apps", base_url="http://127.0.0.1:9/api/")
        app = App(client=client, signing_secret="s", token_verification_enabled=False)
        plugins.append(slackonos_telemetry.register(app, config_path=config))
    for plugin in plugins:
        plugin.start_now(30)
    print("ready", flush=True)
    time.sleep(LIFETIME_SECONDS)  # ends by itself if nobody signals it
    return 0


if __name__ == "__main__":
    sys.exit(main())
