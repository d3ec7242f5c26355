"""The sync edge: the plugin's one global middleware on a Bolt ``App``.

Global middleware runs for every request before Bolt looks for a listener, so
the plugin answers its own commands even when the host added a catch-all
``message`` listener first (Bolt runs only the first matching listener), and
every other request goes on, untouched, to the host's listeners.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_bolt.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from slackonos_telemetry.slack.edges import PluginPort, Router

log = logging.getLogger(__name__)


class TelemetryMiddleware(Middleware):
    def __init__(self, plugin: PluginPort) -> None:
        self.plugin = plugin
        self.router = Router()

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        self.plugin.note_activity()
        request, repeat = self.router.route(req.body, req.context.bot_user_id)
        if request is None:
            return next()
        if not repeat:
            from slackonos_telemetry.slack.port import sync_port
            from slackonos_telemetry.slack.worker import worker

            slack = sync_port(req.context.client)
            if self.plugin.answers_before_ack:
                self.plugin.handle(request, slack)
            else:
                worker.submit(lambda: self.plugin.handle(request, slack))
        return req.context.ack()
