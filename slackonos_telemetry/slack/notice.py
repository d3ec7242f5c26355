"""The first-run notice: once per config file, in the admin channel, while telemetry is on.

Nothing leaves before the admins were told: when the notice is due, the moment it goes
up is noted in the state (``noticePostedAt``) before the tracker can send, and the
consent gate holds every request until TELEMETRY_NOTICE_GRACE_SECONDS have passed. With
no admin channel to post in, the notice goes to the log, which counts as told.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slackonos_telemetry.config.keys import NOTICE_SHOWN_KEY
from slackonos_telemetry.config.settings import Settings, resolve_settings
from slackonos_telemetry.config.store import ConfigReadError, ConfigStore, ConfigWriteError
from slackonos_telemetry.slack.admin_channel import AdminChannel
from slackonos_telemetry.slack.answers import AdminCommands
from slackonos_telemetry.slack.blocks import notice_message, notice_text
from slackonos_telemetry.slack.port import SlackPort, SlackUnavailable
from slackonos_telemetry.telemetry import consent
from slackonos_telemetry.telemetry.outbox import Outbox

log = logging.getLogger(__name__)

STATE_KEY = "noticeShown"  # where the flag is kept when the config cannot be written
LOGGED_KEY = "noticeLogged"  # the notice went to the log (no admin channel to post in)


def notice_due(settings: Settings, meta: Mapping[str, Any]) -> bool:
    """Telemetry is on and the notice was never shown for this config."""
    if not consent.decide(settings).enabled or meta.get(STATE_KEY) is True:
        return False
    try:
        return ConfigStore(settings.config_path).read().get(NOTICE_SHOWN_KEY) is not True
    except ConfigReadError:
        return False


def note_notice_due(config_path: Path) -> None:
    """Before the tracker starts: when the notice is due, note the moment it goes up, so
    that sending waits for its grace. Never raises."""
    settings = resolve_settings(config_path)
    try:
        with Outbox(settings.state).transaction() as outbox:
            meta = outbox.meta()
            if "noticePostedAt" not in meta and notice_due(settings, meta):
                outbox.change_meta(noticePostedAt=time.time())
    except OSError as exc:  # no state: nothing is sent anyway, and status says why
        log.debug("telemetry: could not note the notice: %s", exc)


def post_first_run_notice(commands: AdminCommands, admin: AdminChannel, slack: SlackPort) -> bool:
    """Post the notice unless it was shown before or telemetry is off; True when posted now.

    Nothing is looked up unless the notice is due. The flag is claimed under the
    config lock before posting, so bots starting together post it once; a failed
    post gives the claim back for the next start, and tells the log meanwhile.
    """
    settings = commands.settings()
    outbox = Outbox(settings.state)
    if not notice_due(settings, outbox.meta()):
        return False
    try:
        channel_id = admin.resolve(slack)
    except SlackUnavailable as exc:
        log.warning("telemetry notice not posted: could not look up %s: %s", admin.mention(), exc)
        tell_in_log(commands)
        return False
    if channel_id is None:
        tell_in_log(commands)
        return False
    if not _claim(settings, outbox):
        return False
    message = notice_message(consent.grace_text(settings, outbox.meta()))
    try:
        slack.post_message(channel_id, message.text, message.blocks)
    except SlackUnavailable as exc:
        log.warning("telemetry notice could not be posted to %s: %s", admin.mention(), exc)
        _give_back(settings, outbox)
        tell_in_log(commands)
        return False
    return True


def tell_in_log(commands: AdminCommands) -> None:
    """The notice, where no admin channel can be reached: the log is told, once (a later
    start still posts it in Slack, if the channel can be reached then)."""
    settings = commands.settings()
    outbox = Outbox(settings.state)
    try:
        with outbox.transaction() as transaction:
            meta = transaction.meta()
            if not notice_due(settings, meta) or meta.get(LOGGED_KEY) is True:
                return
            transaction.change_meta(**{LOGGED_KEY: True})
    except OSError as exc:
        log.debug("telemetry: could not note the notice: %s", exc)
        meta = outbox.meta()
    log.warning("telemetry: %s", notice_text(consent.grace_text(settings, meta)))


def _claim(settings: Settings, outbox: Outbox) -> bool:
    """Mark the notice shown; False when another process did first."""
    try:
        before, _ = ConfigStore(settings.config_path).modify(
            lambda current: (
                None if current.get(NOTICE_SHOWN_KEY) is True else {NOTICE_SHOWN_KEY: True}
            )
        )
    except ConfigReadError as exc:
        log.warning("telemetry notice not shown: %s", exc)
        return False
    except ConfigWriteError as exc:
        if not exc.read_only:
            log.warning("telemetry notice not shown: %s", exc)
            return False
        try:  # a read-only config: the flag is kept with the state
            with outbox.transaction() as transaction:
                if transaction.meta().get(STATE_KEY) is True:
                    return False
                transaction.change_meta(**{STATE_KEY: True})
            return True
        except OSError as state_error:
            log.warning("telemetry notice not shown: %s", state_error)
            return False
    return before.get(NOTICE_SHOWN_KEY) is not True


def _give_back(settings: Settings, outbox: Outbox) -> None:
    with contextlib.suppress(ConfigReadError, ConfigWriteError):
        ConfigStore(settings.config_path).update({NOTICE_SHOWN_KEY: False})
    with contextlib.suppress(OSError), outbox.transaction() as transaction:
        if transaction.meta().get(STATE_KEY) is True:
            transaction.change_meta(**{STATE_KEY: False})
