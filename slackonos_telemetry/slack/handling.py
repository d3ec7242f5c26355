"""Handling one recognised request, off the ack path: the admin gate, the command, the answer.

The same code serves a sync ``App`` and an ``AsyncApp``; only the SlackPort
differs. The gate runs here, after the ack, because deciding may need a Web API
call (looking the admin channel up by name), and nothing may delay the ack.
"""

from __future__ import annotations

import logging

from slackonos_telemetry.slack.admin_channel import AdminChannel, Place
from slackonos_telemetry.slack.answers import AdminCommands
from slackonos_telemetry.slack.blocks import SlackMessage
from slackonos_telemetry.slack.port import SlackPort
from slackonos_telemetry.slack.requests import TelemetryRequest

log = logging.getLogger(__name__)


def handle(
    request: TelemetryRequest, commands: AdminCommands, admin: AdminChannel, slack: SlackPort
) -> None:
    """Gate ``request`` to the admin channel, run it, answer in its channel and thread.
    Raises SlackUnavailable when Slack cannot be answered."""
    verdict = admin.check(request.channel_id, slack)
    if verdict.place is Place.UNKNOWN:
        log.warning("could not check the admin channel %s: %s", admin.mention(), verdict.problem)
        _tell_user(
            slack,
            request,
            f"Could not check whether this is the admin channel ({admin.mention()}): "
            f"{verdict.problem}. Nothing was changed; try again in a moment.",
        )
        return
    if verdict.place is Place.ELSEWHERE:
        if request.command is not None:
            refusal = f"{request.label} is an admin command: use it in {admin.mention()}."
        else:
            refusal = f"The telemetry button works only in the admin channel, {admin.mention()}."
        _tell_user(slack, request, refusal + " Nothing was changed.")
        return
    if request.command is not None:
        _post(slack, request, commands.run(request.command))
        return
    if request.turn_on is None:
        return
    reply, status = commands.toggle(request.turn_on)
    if request.message_ts:
        slack.update_message(request.channel_id, request.message_ts, status.text, status.blocks)
    _tell_user(slack, request, reply.text)


def _post(slack: SlackPort, request: TelemetryRequest, message: SlackMessage) -> None:
    slack.post_message(request.channel_id, message.text, message.blocks, request.thread_ts)


def _tell_user(slack: SlackPort, request: TelemetryRequest, text: str) -> None:
    slack.post_ephemeral(request.channel_id, request.user_id, text, request.thread_ts)
