"""The first-run notice: once per config file, in the admin channel, while telemetry is on."""

from __future__ import annotations

import contextlib
import logging

from slackonos_telemetry.config.keys import NOTICE_SHOWN_KEY
from slackonos_telemetry.config.store import ConfigReadError, ConfigStore, ConfigWriteError
from slackonos_telemetry.slack.admin_channel import AdminChannel
from slackonos_telemetry.slack.blocks import notice_message
from slackonos_telemetry.slack.port import SlackPort, SlackUnavailable
from slackonos_telemetry.telemetry.tracker import Tracker

log = logging.getLogger(__name__)


def post_first_run_notice(tracker: Tracker, admin: AdminChannel, slack: SlackPort) -> bool:
    """Post the notice unless it was shown before or telemetry is off; True when posted now.

    Nothing is looked up unless the notice is due. The flag is claimed under the
    config lock before posting, so bots starting together post it once; a failed
    post gives the claim back for the next start.
    """
    store = ConfigStore(tracker.config_path)
    try:
        if store.read().get(NOTICE_SHOWN_KEY) is True or not tracker.settings().enabled:
            return False
    except ConfigReadError:
        return False
    try:
        channel_id = admin.resolve(slack)
    except SlackUnavailable as exc:
        log.warning("telemetry notice not shown: could not look up %s: %s", admin.mention(), exc)
        return False
    if channel_id is None:
        return False
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
        slack.post_message(channel_id, message.text, message.blocks)
    except SlackUnavailable as exc:
        log.warning("telemetry notice could not be posted to %s: %s", admin.mention(), exc)
        with contextlib.suppress(ConfigReadError, ConfigWriteError):
            store.update({NOTICE_SHOWN_KEY: False})
        return False
    return True
