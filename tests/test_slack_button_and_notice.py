"""docs/CONTRACT.md, "Slack commands" and "First run": the status button, the first-run
notice, and which channel is the admin's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bots import (
    ADMIN,
    DISABLE_WAYS,
    GENERAL,
    Testbed,
    base_config,
    button_label,
    open_testbed,
    toggle_button,
)
from tests.support.slack_requests import OTHER_USER, new_ts

HOST_ONLY = {"gongLimit": 3, "defaultRoom": "Kitchen"}


@pytest.fixture
def bed(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> Iterator[Testbed]:
    with open_testbed(monkeypatch, config_path) as testbed:
        yield testbed


# -- the button ------------------------------------------------------------------------------


def test_button_in_the_admin_channel_switches_telemetry_both_ways(bed: Testbed) -> None:
    bed.write_config(base_config(telemetryEnabled=True))
    bot = bed.start()
    status_ts = new_ts()
    button = toggle_button(bot.answer("telemetry status").blocks())
    assert "off" in button_label(button).lower()

    update = bot.next_call(
        "chat.update", lambda: bot.click(button, channel=ADMIN, message_ts=status_ts)
    )

    assert bed.config()["telemetryEnabled"] is False
    assert update.params["channel"] == ADMIN
    assert update.params["ts"] == status_ts
    first_line = str(update.params["text"]).splitlines()[0]
    assert "off" in first_line or "disabled" in first_line, first_line
    assert update.blocks()[0]["type"] == "header"
    button = toggle_button(update.blocks())
    assert "on" in button_label(button).lower(), "the button now turns telemetry on"

    update = bot.next_call(
        "chat.update", lambda: bot.click(button, channel=ADMIN, message_ts=status_ts)
    )

    assert bed.config()["telemetryEnabled"] is True
    assert update.params["ts"] == status_ts
    assert "off" in button_label(toggle_button(update.blocks())).lower()


def test_button_on_the_first_run_notice_switches_telemetry_off(bed: Testbed) -> None:
    bed.write_config(HOST_ONLY)
    bot = bed.start()
    notices = bed.slack.calls("chat.postMessage")
    assert len(notices) == 1
    notice_ts = new_ts()

    update = bot.next_call(
        "chat.update",
        lambda: bot.click(toggle_button(notices[0].blocks()), channel=ADMIN, message_ts=notice_ts),
    )

    assert bed.config()["telemetryEnabled"] is False
    assert update.params["ts"] == notice_ts
    assert "on" in button_label(toggle_button(update.blocks())).lower()


def test_button_outside_the_admin_channel_changes_nothing(bed: Testbed) -> None:
    before = bed.write_config(base_config(telemetryEnabled=True))
    bot = bed.start()
    button = toggle_button(bot.answer("telemetry status").blocks())

    answer = bot.next_call(
        "chat.postEphemeral",
        lambda: bot.click(button, channel=GENERAL, message_ts=new_ts(), user=OTHER_USER),
    )

    assert answer.params["channel"] == GENERAL
    assert answer.params["user"] == OTHER_USER
    bot.settle()
    assert bed.config_bytes() == before
    assert bed.slack.calls("chat.update") == []


def _file_state(path: Path) -> tuple[bytes, int, int]:
    info = path.stat()
    return path.read_bytes(), info.st_mtime_ns, info.st_ino


@pytest.mark.parametrize("start_on", [True, False], ids=["on", "off"])
def test_clicking_into_the_state_already_saved_answers_already_and_writes_nothing(
    bed: Testbed, start_on: bool
) -> None:
    bed.write_config(base_config(telemetryEnabled=start_on))
    bot = bed.start()
    button = toggle_button(bot.answer("telemetry status").blocks())
    # The answer comes after the status is updated: once it is in, the click is done.
    first = bot.next_call(
        "chat.postEphemeral", lambda: bot.click(button, channel=ADMIN, message_ts=new_ts())
    )
    assert "already" not in str(first.params["text"]), first.params
    assert bed.config()["telemetryEnabled"] is (not start_on)
    before = _file_state(bed.config_path)

    # The same button on an older status message (a second admin, a second click).
    answer = bot.next_call(
        "chat.postEphemeral", lambda: bot.click(button, channel=ADMIN, message_ts=new_ts())
    )

    text = str(answer.params["text"])
    word = "true" if not start_on else "false"
    assert "already" in text and word in text, text
    assert "→" not in text and "saved to" not in text, text
    bot.settle()
    assert _file_state(bed.config_path) == before, "the config file was written"


def test_a_click_outside_the_admin_channel_is_refused_in_words_for_a_click(bed: Testbed) -> None:
    before = bed.write_config(base_config(telemetryEnabled=True))
    bot = bed.start()
    button = toggle_button(bot.answer("telemetry status").blocks())

    answer = bot.next_call(
        "chat.postEphemeral",
        lambda: bot.click(button, channel=GENERAL, message_ts=new_ts(), user=OTHER_USER),
    )

    text = str(answer.params["text"])
    assert "admin command" not in text and "`the telemetry button`" not in text, text
    assert "button" in text and ADMIN in text, text
    assert "Nothing was changed" in text, text
    bot.settle()
    assert bed.config_bytes() == before


# -- the first-run notice -----------------------------------------------------------------------


def test_first_run_notice_is_posted_once_across_two_starts(bed: Testbed) -> None:
    bed.write_config(HOST_ONLY)
    first = bed.start()

    notices = bed.slack.calls("chat.postMessage")
    assert len(notices) == 1, "the first start shows the notice"
    notice = notices[0]
    assert notice.params["channel"] == ADMIN
    text = notice.params["text"]
    assert "collected" in text.lower()
    for way in DISABLE_WAYS:
        assert way in text, f"the notice does not say {way!r}"
    assert notice.blocks(), "the notice is Block Kit"
    config = bed.config()
    assert config["telemetryNoticeShown"] is True
    assert {key: config[key] for key in HOST_ONLY} == HOST_ONLY
    first.stop()

    second = bed.start()  # a second app, same config: a restart

    marker = second.settle()
    posted = bed.slack.calls("chat.postMessage")
    assert posted == [notice, marker], "the notice was shown twice"
    assert bed.config()["telemetryNoticeShown"] is True


def test_a_notice_that_could_not_be_posted_is_shown_on_the_next_start(
    bed: Testbed, monkeypatch: pytest.MonkeyPatch, config_path: Path
) -> None:
    bed.write_config(HOST_ONLY)
    bed.slack.fail("chat.postMessage", "not_in_channel")

    bed.start()

    assert len(bed.slack.calls("chat.postMessage")) == 1, "the post was tried once"
    assert bed.config().get("telemetryNoticeShown") is not True, "a failed post is not shown"

    with open_testbed(monkeypatch, config_path) as restarted:
        restarted.start()
        notices = restarted.slack.calls("chat.postMessage")
        assert [call.params["channel"] for call in notices] == [ADMIN]
        assert restarted.config()["telemetryNoticeShown"] is True


@pytest.mark.parametrize(
    ("env", "config"),
    [
        ({}, {**HOST_ONLY, "telemetryEnabled": False}),
        ({"TELEMETRY_ENABLED": "false"}, HOST_ONLY),
        ({"DO_NOT_TRACK": "1"}, HOST_ONLY),
    ],
    ids=["config-false", "TELEMETRY_ENABLED", "DO_NOT_TRACK"],
)
def test_no_first_run_notice_while_telemetry_is_off(
    bed: Testbed, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], config: dict[str, object]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = bed.write_config(dict(config))

    bot = bed.start()

    assert bed.slack.calls("chat.postMessage") == []
    marker = bot.settle()
    assert bed.slack.calls("chat.postMessage") == [marker]
    assert bed.config_bytes() == before, "the notice flag must not be set while off"


# -- the admin channel -------------------------------------------------------------------------


@pytest.mark.parametrize("configured", ["general", "#general", "C0GENERAL"])
def test_admin_channel_by_name_or_id(bed: Testbed, configured: str) -> None:
    bed.write_config({**HOST_ONLY, "adminChannel": configured, "telemetryEnabled": True})
    bot = bed.start()

    notices = bed.slack.calls("chat.postMessage")
    assert [call.params["channel"] for call in notices] == [GENERAL], "notice in #general"
    answer = bot.answer("setconfig telemetryEnabled false", channel=GENERAL)
    assert answer.params["channel"] == GENERAL
    assert bed.config()["telemetryEnabled"] is False

    refused = bot.ephemeral("setconfig telemetryEnabled true", channel=ADMIN)
    assert refused.params["channel"] == ADMIN
    assert bed.config()["telemetryEnabled"] is False, "#music-admin is no longer the admin's"
