"""The first-run notice: once per config file, in the admin channel, while telemetry is on."""

from __future__ import annotations

import contextlib
import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from slackonos_telemetry.config.keys import NOTICE_SHOWN_KEY
from slackonos_telemetry.config.store import ConfigReadError, ConfigStore, ConfigWriteError
from slackonos_telemetry.slack.admin_channel import AdminChannel
from slackonos_telemetry.slack.blocks import notice_message
from slackonos_telemetry.telemetry.tracker import Tracker

log = logging.getLogger(__name__)


def post_first_run_notice(tracker: Tracker, admin: AdminChannel, client: WebClient) -> bool:
    """Post the notice unless it was shown before; True when posted now.

    The flag is claimed under the config lock before posting, so bots starting
    together post it once; a failed post gives the claim back for the next start.
    """
    channel_id = admin.resolve(client)
    if not tracker.settings().enabled or channel_id is None:
        return False
    store = ConfigStore(tracker.config_path)
    try:
        before, _ = store.modify(
            lambda current: (
                None if current.get(NOTICE_SHOWN_KEY) is True else {NOTICE_SHOWN_KEY: True}
            )
        )
    except (ConfigReadError, ConfigWriteError) as exc:
        log.warning("telemetry notice not shown: %s", exc)
        return False
    if before.get(NOTICE_SHOWN_KEY) is True:
        return False
    message = notice_message(enabled=True)
    try:
        client.chat_postMessage(channel=channel_id, text=message.text, blocks=message.blocks)
    except (SlackApiError, SlackClientError, OSError) as exc:
        log.warning("telemetry notice could not be posted to %s: %s", admin.mention(), exc)
        with contextlib.suppress(ConfigReadError, ConfigWriteError):
            store.update({NOTICE_SHOWN_KEY: False})
        return False
    return True
