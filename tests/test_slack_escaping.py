"""Answers that cannot be turned against the channel (docs/CONTRACT.md, "Slack commands"):
every value the plugin puts in a Slack message (what the user typed, hosts, paths, keys,
versions) is escaped for mrkdwn, so `<!channel>`, `<!here>`, `<@U…>` or a link shows as
text, never as markup; and every message's blocks are valid Block Kit.

The real Bolt app over signed HTTP, its Web API calls recorded by the Slack stand-in;
hostile values come from the config file, the environment and the commands typed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from slackonos_telemetry.run.local_slack import ApiCall
from tests.support.bots import ADMIN, GENERAL, Testbed, base_config, open_testbed, toggle_button
from tests.support.slack_requests import new_ts

HOSTILE = "<!channel> <!here> <@U0ADMIN01> <https://evil.example|click> &lt;x&gt; & <b>"
# What the plugin itself may put in as markup: a link to a channel by its ID.
OUR_MARKUP = re.compile(r"<#[A-Z0-9]+>")
CHAT_METHODS = ("chat.postMessage", "chat.postEphemeral", "chat.update")


@pytest.fixture
def bed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Testbed]:
    # The config's own path holds markup characters too.
    config_path = tmp_path / "bot & <!here> <b>" / "config.json"
    monkeypatch.setenv("SLACKONOS_RELEASE", HOSTILE)
    with open_testbed(monkeypatch, config_path) as testbed:
        yield testbed


def _shown(text: str) -> str:
    """What Slack shows for mrkdwn text: the three escapes undone."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _texts(call: ApiCall) -> Iterator[str]:
    yield str(call.params.get("text") or "")
    for block in call.blocks():
        yield from _strings(block)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if value.get("type") in ("mrkdwn", "plain_text") and isinstance(value.get("text"), str):
            yield value["text"]
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _assert_no_live_markup(call: ApiCall) -> None:
    for text in _texts(call):
        rest = OUR_MARKUP.sub("", text)
        assert "<" not in rest and ">" not in rest, f"{call.method}: live markup in {text!r}"


def _assert_valid_blocks(call: ApiCall) -> None:
    for block in call.blocks():
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()


def _every_chat_call(bed: Testbed) -> list[ApiCall]:
    return [call for method in CHAT_METHODS for call in bed.slack.calls(method)]


def test_hostile_values_from_the_config_the_environment_and_the_command_show_as_text(
    bed: Testbed,
) -> None:
    bed.write_config(base_config(telemetryApiKey="<!channel>phc_abcdefghijklmnop"))
    bot = bed.start()

    status = bot.answer("telemetry status")
    typed = bot.answer(f"setconfig telemetryEnabled {HOSTILE.split()[0]}")
    alone = bot.answer("setconfig telemetryEnabled")
    preview = bot.answer("telemetry preview")
    saved = bot.answer("setconfig telemetryEnabled false")
    reset = bot.answer("telemetry reset-id")
    update = bot.next_call(
        "chat.update",
        lambda: bot.click(toggle_button(status.blocks()), channel=ADMIN, message_ts=new_ts()),
    )
    refused = bot.ephemeral("telemetry status", channel=GENERAL)

    shown = {name: _shown(str(call.params["text"])) for name, call in locals().items() if
             isinstance(call, ApiCall)}  # fmt: skip
    assert HOSTILE in shown["status"], "the release is shown, as text"
    assert str(bed.config_path) in shown["saved"], "the path is shown, as text"
    assert "<!channel>" in shown["typed"], "what was typed is shown, as text"
    assert HOSTILE in shown["preview"], "the preview shows the release as text"
    for call in _every_chat_call(bed):
        _assert_no_live_markup(call)
        _assert_valid_blocks(call)
    assert {status.method, update.method, refused.method} == set(CHAT_METHODS)
    del alone, reset


def test_a_hostile_admin_channel_name_shows_as_text_in_a_refusal(bed: Testbed) -> None:
    bed.write_config(base_config(adminChannel="<!channel>"))
    bot = bed.start()

    refused = bot.ephemeral("telemetry status", channel=GENERAL)

    assert "<!channel>" in _shown(str(refused.params["text"]))
    _assert_no_live_markup(refused)


def test_the_first_run_notice_is_valid_block_kit_with_nothing_live(bed: Testbed) -> None:
    bed.write_config(base_config(telemetryNoticeShown=False))
    bed.start()

    (notice,) = bed.slack.wait_for_calls("chat.postMessage", 1)

    assert notice.params["channel"] == ADMIN
    _assert_no_live_markup(notice)
    _assert_valid_blocks(notice)
