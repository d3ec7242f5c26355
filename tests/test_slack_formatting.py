"""Slack formatting (docs/CONTRACT.md, "Slack commands") is removed before parsing, for
messages and mentions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bots import ADMIN, BOT, Testbed, base_config, open_testbed

SAVING_VARIANTS = {
    "bot-mention": f"<@{BOT}> setconfig telemetryEnabled false",
    "backticks": "`setconfig telemetryEnabled false`",
    "inline-fence": "```setconfig telemetryEnabled false```",
    "block-fence": "```\nsetconfig telemetryEnabled false\n```",
    "bold": "*setconfig telemetryEnabled false*",
    "italic": "_setconfig telemetryEnabled false_",
    "quote": "&gt; setconfig telemetryEnabled false",
    "mixed-case": "SETCONFIG TELEMETRYENABLED OFF",
    "word-by-word": "*setconfig* _telemetryEnabled_ `no`",
    "quoted-bold-code": "&gt; *`setconfig telemetryEnabled 0`*",
}
KINDS = ["message", "app_mention"]


@pytest.fixture
def bed(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> Iterator[Testbed]:
    with open_testbed(monkeypatch, config_path) as testbed:
        yield testbed


def as_kind(text: str, kind: str) -> str:
    """An app_mention's text always starts with the bot's mention."""
    if kind == "app_mention" and not text.startswith(f"<@{BOT}>"):
        return f"<@{BOT}> {text}"
    return text


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("variant", list(SAVING_VARIANTS), ids=list(SAVING_VARIANTS))
def test_formatted_setconfig_is_understood(bed: Testbed, variant: str, kind: str) -> None:
    bed.write_config(base_config(telemetryEnabled=True))
    bot = bed.start()

    answer = bot.answer(as_kind(SAVING_VARIANTS[variant], kind), kind=kind)

    assert answer.params["channel"] == ADMIN
    assert "false" in answer.params["text"]
    assert bed.config()["telemetryEnabled"] is False


@pytest.mark.parametrize("kind", KINDS)
def test_entities_are_decoded_before_parsing(bed: Testbed, kind: str) -> None:
    before = bed.write_config(base_config(telemetryEnabled=True))
    bot = bed.start()

    text = bot.answer(
        as_kind("setconfig telemetryEnabled &lt;maybe&gt;&amp;more", kind), kind=kind
    ).params["text"]

    # Read as typed, and shown as typed: escaped once, which Slack shows as the text.
    assert "`&lt;maybe&gt;&amp;more`" in text, f"the value should be read as typed: {text!r}"
    assert "<" not in text and "&amp;lt;" not in text
    bot.settle()
    assert bed.config_bytes() == before


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "text", ["`telemetry`", "*Telemetry Status*", "&gt; _telemetry status_", "```telemetry```"]
)
def test_formatted_status_is_understood(bed: Testbed, text: str, kind: str) -> None:
    bed.write_config(base_config())
    bot = bed.start()

    answer = bot.answer(as_kind(text, kind), kind=kind)

    kinds = [block["type"] for block in answer.blocks()]
    assert kinds and kinds[0] == "header" and "actions" in kinds, kinds
