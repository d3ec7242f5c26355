"""The sync edge: the plugin's one global middleware on a Bolt ``App``.

Global middleware runs for every request before Bolt looks for a listener, so
the plugin answers its own commands even when the host added a catch-all
``message`` listener first (Bolt runs only the first matching listener), and
every other request goes on, untouched, to the host's listeners.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from slack_bolt.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from slackonos_telemetry.forksafe import importing
from slackonos_telemetry.slack.edges import FAAS_WAIT_SECONDS, PluginPort, Router

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
            with importing():
                from slackonos_telemetry.slack import worker
                from slackonos_telemetry.slack.port import sync_port

            slack = sync_port(req.context.client)
            done = worker.submit(lambda: self.plugin.handle(request, slack))
            if self.plugin.answers_before_ack:
                # handle() logs its own failures; past the wait, the answer finishes later.
                with contextlib.suppress(Exception):
                    done.result(FAAS_WAIT_SECONDS)
        return req.context.ack()
