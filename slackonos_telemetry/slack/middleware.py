"""The plugin's three global Bolt middlewares: recognise, gate, run.

Global middleware runs for every request before Bolt looks for a listener, so
the plugin answers its own commands even when the host added a catch-all
``message`` listener first (Bolt runs only the first matching listener), and
every other request goes on, untouched, to the host's listeners.

This module is imported by ``register`` on the host's main thread, so it is
light: a request that cannot be ours is told apart by a cheap look at its text,
and only a likely command loads the parsing and the command machinery.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from slackonos_telemetry.slack.blocks import SlackMessage
    from slackonos_telemetry.slack.plugin import TelemetryPlugin
    from slackonos_telemetry.slack.requests import TelemetryRequest

log = logging.getLogger(__name__)

CONTEXT_KEY = "slackonos_telemetry_request"
TOGGLE_ACTION_ID = "slackonos_telemetry_toggle"
TURN_ON = "on"
TURN_OFF = "off"
_COMMAND_WORDS = ("telemetry", "setconfig")
_REMEMBERED_MESSAGES = 512


def might_be_ours(body: dict[str, Any]) -> bool:
    """A cheap first look: False for nearly everything that is not a telemetry request."""
    kind = body.get("type")
    if kind == "event_callback":
        text = (body.get("event") or {}).get("text")
        return isinstance(text, str) and any(word in text.lower() for word in _COMMAND_WORDS)
    if kind == "block_actions":
        actions = body.get("actions") or []
        return any(isinstance(a, dict) and a.get("action_id") == TOGGLE_ACTION_ID for a in actions)
    return False


class _PluginMiddleware(Middleware):
    """Passes on every request the router did not mark as the plugin's; ``handle``
    sees the marked ones."""

    def __init__(self, plugin: TelemetryPlugin) -> None:
        self.plugin = plugin

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        request: TelemetryRequest | None = req.context.get(CONTEXT_KEY)
        if request is None:
            return next()
        return self.handle(req, request, next)

    def handle(
        self, req: BoltRequest, request: TelemetryRequest, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        return next()

    def _ack(self) -> BoltResponse:
        return BoltResponse(status=200, body="")

    def _later(self, request: BoltRequest, work: Callable[[WebClient], None]) -> None:
        """Slack work off the ack path: the host's executor, as Bolt's listeners use;
        inline when the app must finish before it answers (FaaS mode)."""
        client = request.context.client
        if client is None:
            log.warning("no Slack client for this request: cannot answer it")
            return

        def guarded() -> None:
            try:
                work(client)
            except Exception:
                log.exception("telemetry command failed; the bot is not affected")

        app = self.plugin.app
        if app.process_before_response:
            guarded()
        else:
            app.listener_runner.listener_executor.submit(guarded)


class CommandRouter(_PluginMiddleware):
    """Marks the plugin's own requests; each Slack message is handled once even when
    it arrives as both ``message`` and ``app_mention``, or is retried by Slack."""

    def __init__(self, plugin: TelemetryPlugin) -> None:
        super().__init__(plugin)
        self._handled: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._guard = threading.Lock()

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        self.plugin.note_activity()
        if CONTEXT_KEY in req.context or not might_be_ours(req.body):
            return next()
        from slackonos_telemetry.slack.requests import recognize

        request = recognize(req.body, req.context.bot_user_id)
        if request is None:
            return next()
        if request.command is not None and self._seen_before(request):
            return self._ack()
        req.context[CONTEXT_KEY] = request
        return next()

    def _seen_before(self, request: TelemetryRequest) -> bool:
        key = (request.channel_id, request.message_ts or "")
        with self._guard:
            if key in self._handled:
                return True
            self._handled[key] = None
            while len(self._handled) > _REMEMBERED_MESSAGES:
                self._handled.popitem(last=False)
        return False

    @property
    def name(self) -> str:
        return "slackonos_telemetry.CommandRouter"


class AdminGate(_PluginMiddleware):
    """Lets a telemetry request through only from the admin channel; elsewhere the
    user alone is told, and nothing changes."""

    def handle(
        self, req: BoltRequest, request: TelemetryRequest, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        client = req.context.client
        admin = self.plugin.admin_channel
        if client is not None and admin.is_admin_channel(request.channel_id, client):
            return next()

        def refuse(client: WebClient) -> None:
            client.chat_postEphemeral(
                channel=request.channel_id,
                user=request.user_id,
                thread_ts=request.thread_ts,
                text=f"`{request.label}` is an admin command: use it in {admin.mention()}. "
                "Nothing was changed.",
            )

        self._later(req, refuse)
        return self._ack()

    @property
    def name(self) -> str:
        return "slackonos_telemetry.AdminGate"


class CommandRunner(_PluginMiddleware):
    """Runs the command and answers in the same channel and thread; a click on the
    button updates the status message in place."""

    def handle(
        self, req: BoltRequest, request: TelemetryRequest, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        commands = self.plugin.commands
        command = request.command
        if command is not None:

            def answer(client: WebClient) -> None:
                _post(client, request, commands.run(command))

            self._later(req, answer)
        elif request.turn_on is not None:
            turn_on = request.turn_on

            def switch(client: WebClient) -> None:
                reply, status = commands.toggle(turn_on)
                if request.message_ts:
                    client.chat_update(
                        channel=request.channel_id,
                        ts=request.message_ts,
                        text=status.text,
                        blocks=status.blocks,
                    )
                client.chat_postEphemeral(
                    channel=request.channel_id,
                    user=request.user_id,
                    thread_ts=request.thread_ts,
                    text=reply.text,
                )

            self._later(req, switch)
        return self._ack()

    @property
    def name(self) -> str:
        return "slackonos_telemetry.CommandRunner"


def _post(client: WebClient, request: TelemetryRequest, message: SlackMessage) -> None:
    client.chat_postMessage(
        channel=request.channel_id,
        thread_ts=request.thread_ts,
        text=message.text,
        blocks=message.blocks,
    )
