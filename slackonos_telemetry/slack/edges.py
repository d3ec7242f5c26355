"""What the sync and the async middleware share: recognising the plugin's requests.

Both edges (``middleware.py``, ``async_middleware.py``) do the same four things:
note the bot's activity, recognise a telemetry request, hand it to the plugin's
worker, and acknowledge it at once. Everything else is the plugin's, off the
ack path. This module is imported by ``register()``: light, the parsing is
loaded only for a message that looks like a command.

With ``process_before_response`` (FaaS mode) the app must finish its work before
Slack gets its answer: the edge waits for the command, but never longer than
FAAS_WAIT_SECONDS, so Slack is answered within its 3 s whatever the Web API does;
an answer still under way then finishes on the worker thread.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Protocol

from slackonos_telemetry.forksafe import importing
from slackonos_telemetry.slack.glance import might_be_ours

if TYPE_CHECKING:
    from slackonos_telemetry.slack.port import SlackPort
    from slackonos_telemetry.slack.requests import TelemetryRequest

log = logging.getLogger(__name__)

_REMEMBERED_MESSAGES = 512
FAAS_WAIT_SECONDS = 2.0


class PluginPort(Protocol):
    """What an edge needs of the plugin."""

    @property
    def answers_before_ack(self) -> bool:
        """The app must finish its work before it answers Slack (FaaS mode)."""
        ...

    def note_activity(self) -> None: ...

    def handle(self, request: TelemetryRequest, slack: SlackPort) -> None:
        """Gate, run and answer ``request`` (off the ack path); never raises."""
        ...


class Router:
    """Recognises the plugin's own requests; each Slack message is handled once even when
    it arrives as both ``message`` and ``app_mention``, or is retried by Slack."""

    def __init__(self) -> None:
        self._handled: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._guard = threading.Lock()
        self._failed = False

    def route(self, body: Any, bot_user_id: str | None) -> tuple[TelemetryRequest | None, bool]:
        """(the request, whether it is a repeat to acknowledge and drop); (None, False)
        for a request that is the host's. Never raises."""
        try:
            if not might_be_ours(body):
                return None, False
            with importing():
                from slackonos_telemetry.slack.requests import recognize

            request = recognize(body, bot_user_id)
        except Exception:
            if not self._failed:
                self._failed = True
                log.exception("telemetry could not read a request; passed it to the bot")
            return None, False
        if request is None:
            return None, False
        return request, request.command is not None and self._seen_before(request)

    def _seen_before(self, request: TelemetryRequest) -> bool:
        key = (request.channel_id, request.message_ts or "")
        with self._guard:
            if key in self._handled:
                return True
            self._handled[key] = None
            while len(self._handled) > _REMEMBERED_MESSAGES:
                self._handled.popitem(last=False)
        return False
