"""The plugin's three global Bolt middlewares: recognise, gate, run.

Global middleware runs for every request before Bolt looks for a listener, so
the plugin answers its own commands even when the host added a catch-all
``message`` listener first (Bolt runs only the first matching listener), and
every other request goes on, untouched, to the host's listeners.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_bolt.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient

from .slack_commands import Command, parse_command
from .status_blocks import TOGGLE_ACTION_ID, TURN_ON, SlackMessage

if TYPE_CHECKING:
    from .plugin import TelemetryPlugin

log = logging.getLogger(__name__)

CONTEXT_KEY = "slackonos_telemetry_request"
_REMEMBERED_MESSAGES = 512
_HANDLED_SUBTYPES = (None, "thread_broadcast")


@dataclass(frozen=True)
class TelemetryRequest:
    """One of the plugin's own requests: a command message or a click on its button."""

    channel_id: str
    user_id: str
    command: Command | None = None
    turn_on: bool | None = None
    thread_ts: str | None = None
    message_ts: str | None = None

    @property
    def label(self) -> str:
        return self.command.words if self.command else "the telemetry button"


def recognize(body: dict[str, Any], bot_user_id: str | None) -> TelemetryRequest | None:
    """The plugin's request in ``body``, or None for anything the host should get."""
    if body.get("type") == "event_callback":
        return _recognize_message(body.get("event") or {}, bot_user_id)
    if body.get("type") == "block_actions":
        return _recognize_click(body)
    return None


def _recognize_message(event: dict[str, Any], bot_user_id: str | None) -> TelemetryRequest | None:
    kind = event.get("type")
    if kind not in ("message", "app_mention"):
        return None
    if kind == "message" and event.get("subtype") not in _HANDLED_SUBTYPES:
        return None  # edits, deletions, bot messages, joins...
    user, channel = event.get("user"), event.get("channel")
    if event.get("bot_id") or not user or not channel or user == bot_user_id:
        return None
    command = parse_command(str(event.get("text") or ""), bot_user_id, kind == "app_mention")
    if command is None:
        return None
    return TelemetryRequest(
        channel_id=str(channel),
        user_id=str(user),
        command=command,
        thread_ts=event.get("thread_ts"),
        message_ts=event.get("ts"),
    )


def _recognize_click(body: dict[str, Any]) -> TelemetryRequest | None:
    actions = body.get("actions") or []
    action = next((a for a in actions if a.get("action_id") == TOGGLE_ACTION_ID), None)
    channel = (body.get("channel") or {}).get("id")
    user = (body.get("user") or {}).get("id")
    if action is None or not channel or not user:
        return None
    message = body.get("message") or {}
    return TelemetryRequest(
        channel_id=str(channel),
        user_id=str(user),
        turn_on=action.get("value") == TURN_ON,
        thread_ts=message.get("thread_ts"),
        message_ts=message.get("ts"),
    )


class _PluginMiddleware(Middleware):
    def __init__(self, plugin: TelemetryPlugin) -> None:
        self.plugin = plugin

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
        self.plugin.tracker.note_activity()
        if CONTEXT_KEY in req.context:  # the plugin registered twice on one app
            return next()
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

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        request = req.context.get(CONTEXT_KEY)
        if not isinstance(request, TelemetryRequest):
            return next()
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

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        request = req.context.get(CONTEXT_KEY)
        if not isinstance(request, TelemetryRequest):
            return next()
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
