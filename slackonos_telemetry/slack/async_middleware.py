"""The async edge: the plugin's one global middleware on a Bolt ``AsyncApp``.

The same logic as ``middleware.py``: recognise, hand over, acknowledge at once.
The work runs on the plugin's worker thread, never on the event loop (it takes
file locks and fsyncs); its Web API calls go through the request's
``AsyncWebClient``, run on this loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from slackonos_telemetry.slack import worker
from slackonos_telemetry.slack.edges import FAAS_WAIT_SECONDS, PluginPort, Router
from slackonos_telemetry.slack.port import async_port

log = logging.getLogger(__name__)


class AsyncTelemetryMiddleware(AsyncMiddleware):
    def __init__(self, plugin: PluginPort) -> None:
        self.plugin = plugin
        self.router = Router()

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse:
        self.plugin.note_activity()
        request, repeat = self.router.route(req.body, req.context.bot_user_id)
        if request is None:
            return await next()
        if not repeat:
            slack = async_port(req.context.client, asyncio.get_running_loop())
            done = worker.submit(lambda: self.plugin.handle(request, slack))
            if self.plugin.answers_before_ack:
                # handle() logs its own failures; past the wait, the answer finishes later.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        asyncio.shield(asyncio.wrap_future(done)), FAAS_WAIT_SECONDS
                    )
        return await req.context.ack()
