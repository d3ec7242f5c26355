"""Handling one recognised request, off the ack path: the admin gate, the command, the answer.

The same code serves a sync ``App`` and an ``AsyncApp``; only the SlackPort
differs. The gate runs here, after the ack, because deciding may need a Web API
call (looking the admin channel up by name), and nothing may delay the ack.

A command that changes something is run once however many workers Slack's retries
land on: its message is claimed in the state folder, which every member process sees,
before it runs. (A command that only reads writes nothing, so it claims nothing; a
retry of one on another worker answers twice, and changes nothing.)
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackObjectFormationError

from slackonos_telemetry.slack.admin_channel import AdminChannel, Place
from slackonos_telemetry.slack.answers import AdminCommands
from slackonos_telemetry.slack.blocks import SlackMessage
from slackonos_telemetry.slack.mrkdwn import escape, validate_blocks
from slackonos_telemetry.slack.port import SlackPort, SlackUnavailable
from slackonos_telemetry.slack.requests import TelemetryRequest
from slackonos_telemetry.telemetry.log_once import OnceLog
from slackonos_telemetry.telemetry.outbox import SLACK_EVENTS_KEPT, Outbox

log = logging.getLogger(__name__)
_once = OnceLog(log)


def handle(
    request: TelemetryRequest, commands: AdminCommands, admin: AdminChannel, slack: SlackPort
) -> None:
    """Gate ``request`` to the admin channel, run it, answer in its channel and thread.
    Logs (and survives) a Slack that cannot be answered."""
    try:
        _handle(request, commands, admin, slack)
    except SlackUnavailable as exc:
        log.warning("telemetry could not answer in Slack: %s", exc)


def _handle(
    request: TelemetryRequest, commands: AdminCommands, admin: AdminChannel, slack: SlackPort
) -> None:
    verdict = admin.check(request.channel_id, slack)
    if verdict.place is Place.UNKNOWN:
        log.warning("could not check the admin channel %s: %s", admin.mention(), verdict.problem)
        _tell_user(
            slack,
            request,
            f"Could not check whether this is the admin channel ({admin.mention()}): "
            f"{escape(verdict.problem)}. Nothing was changed; try again in a moment.",
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
        if request.command.changes_something and not _first_time(commands, request):
            return  # a retry of a command another worker (or this one) already ran
        _post(slack, request, commands.run(request.command))
        return
    if request.turn_on is None:
        return
    reply, status = commands.toggle(request.turn_on)
    if request.message_ts:
        slack.update_message(request.channel_id, request.message_ts, status.text, status.blocks)
    _tell_user(slack, request, reply.text)


def _first_time(commands: AdminCommands, request: TelemetryRequest) -> bool:
    """Claim the command's message for this process, where every member sees it."""
    if not request.message_ts:
        return True
    key = f"{request.channel_id}:{request.message_ts}"
    try:
        with Outbox(commands.settings().state).transaction() as outbox:
            seen = list(outbox.meta().get("slackEvents", []))
            if key in seen:
                return False
            outbox.change_meta(slackEvents=[*seen, key][-SLACK_EVENTS_KEPT:])
    except OSError as exc:  # no state folder: each process knows only its own repeats
        _once.warning("claim", "telemetry: Slack retries are told apart per process: %s", exc)
    return True


def _post(slack: SlackPort, request: TelemetryRequest, message: SlackMessage) -> None:
    blocks = message.blocks
    if blocks is not None:
        try:
            validate_blocks(blocks)
        except SlackObjectFormationError as exc:  # never a bug's answer: the text says it all
            _once.warning("blocks", "telemetry: sending text only, the blocks are invalid: %s", exc)
            blocks = None
    slack.post_message(request.channel_id, message.text, blocks, request.thread_ts)


def _tell_user(slack: SlackPort, request: TelemetryRequest, text: str) -> None:
    slack.post_ephemeral(request.channel_id, request.user_id, text, request.thread_ts)
