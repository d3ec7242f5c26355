"""The command table (docs/CONTRACT.md, "Slack commands"): each admin command through a
real Bolt app over HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support.bots import (
    ADMIN,
    API_KEY,
    BOOLEAN_WORDS,
    DISABLE_WAYS,
    INSTANCE_ID,
    Testbed,
    base_config,
    button_label,
    code_block,
    open_testbed,
    toggle_button,
)
from tests.support.capture import ACCEPT, REFUSE
from tests.support.events import COMMON_PROPERTIES, SDK_PROPERTIES, is_uuid4
from tests.support.files import outbox_events, outbox_path
from tests.support.waiting import wait_until

SPEC_PROPERTIES = COMMON_PROPERTIES
HOST_KEYS = {"gongLimit": 3, "defaultRoom": "Kitchen"}


@pytest.fixture
def bed(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> Iterator[Testbed]:
    with open_testbed(monkeypatch, config_path) as testbed:
        yield testbed


@pytest.fixture
def offline_bed(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> Iterator[Testbed]:
    """PostHog unreachable: the startup event stays in the outbox."""
    with open_testbed(monkeypatch, config_path, capture_mode=REFUSE) as testbed:
        yield testbed


def wait_for_startup_in_outbox(bed: Testbed) -> None:
    assert wait_until(
        lambda: any(e.get("event") == "startup" for e in outbox_events(bed.config_path))
    ), "the tracker never put its startup event in the outbox"


def assert_host_keys_kept(bed: Testbed) -> None:
    config = bed.config()
    for key, value in HOST_KEYS.items():
        assert config.get(key) == value, f"host key {key} lost or changed: {config}"


# -- setconfig telemetryEnabled <value> ------------------------------------------------


def test_setconfig_false_saves_and_answers_old_new_and_path(offline_bed: Testbed) -> None:
    bed = offline_bed
    bed.write_config(base_config(telemetryEnabled=True))
    bot = bed.start()
    wait_for_startup_in_outbox(bed)

    answer = bot.answer("setconfig telemetryEnabled false")

    text = answer.params["text"]
    assert answer.params["channel"] == ADMIN
    assert bed.config()["telemetryEnabled"] is False
    assert_host_keys_kept(bed)
    assert str(bed.config_path) in text, text
    old_at, new_at = text.find("true"), text.find("false")
    assert 0 <= old_at < new_at, f"old value then new value expected in {text!r}"
    assert outbox_events(bed.config_path) == [], "disabling must empty the outbox at once"


def test_setconfig_true_after_false_reports_both_values(bed: Testbed) -> None:
    bed.write_config(base_config(telemetryEnabled=False))
    bot = bed.start()

    text = bot.answer("setconfig telemetryEnabled yes").params["text"]

    assert bed.config()["telemetryEnabled"] is True
    old_at, new_at = text.find("false"), text.find("true")
    assert 0 <= old_at < new_at, text
    assert str(bed.config_path) in text


def test_setconfig_without_value_answers_current_value_source_and_usage(bed: Testbed) -> None:
    before = bed.write_config(base_config(telemetryEnabled=False))
    bot = bed.start()

    text = bot.answer("setconfig telemetryEnabled").params["text"]

    assert "false" in text
    assert "config" in text, f"the source is missing: {text!r}"
    assert "setconfig telemetryEnabled" in text, f"no usage: {text!r}"
    for word in BOOLEAN_WORDS:
        assert word in text
    bot.settle()
    assert bed.config_bytes() == before


def test_setconfig_without_value_names_default_source(bed: Testbed) -> None:
    bed.write_config(base_config())
    bot = bed.start()

    text = bot.answer("setconfig telemetryEnabled").params["text"]

    assert "true" in text
    assert "default" in text, text


def test_setconfig_non_boolean_is_an_error_listing_the_words_and_changes_nothing(
    bed: Testbed,
) -> None:
    before = bed.write_config(base_config(telemetryEnabled=True))
    bot = bed.start()

    text = bot.answer("setconfig telemetryEnabled maybe").params["text"]

    assert "maybe" in text
    for word in BOOLEAN_WORDS:
        assert re.search(rf"\b{word}\b", text), f"{word!r} not listed in {text!r}"
    marker = bot.settle()
    assert bed.config_bytes() == before
    assert "on" in marker.params["text"].splitlines()[0]


# -- telemetry / telemetry status --------------------------------------------------------


@pytest.mark.parametrize("command", ["telemetry", "telemetry status", "Telemetry STATUS"])
def test_status_is_block_kit_with_a_complete_plain_text_fallback(
    offline_bed: Testbed, command: str
) -> None:
    bed = offline_bed
    bed.write_config(base_config())
    bot = bed.start(app_version="9.8.7")
    wait_for_startup_in_outbox(bed)

    answer = bot.answer(command)

    blocks = answer.blocks()
    kinds = [block["type"] for block in blocks]
    assert kinds[0] == "header", kinds
    assert any(b["type"] == "section" and b.get("fields") for b in blocks), kinds
    assert "context" in kinds, kinds
    button = toggle_button(blocks)
    assert "off" in button_label(button).lower(), "telemetry is on: the button turns it off"

    text = answer.params["text"]
    lines = text.splitlines()
    lower = text.lower()
    assert re.search(r"\b(on|enabled)\b", lines[0]), lines[0]
    assert "default" in lines[0], f"the source is missing from {lines[0]!r}"
    assert INSTANCE_ID in text
    assert bed.capture.url in text, "the host is missing"
    assert "9.8.7" in text, "the app version is missing"
    assert "uptime" in lower
    outbox_line = next(line for line in lines if "outbox" in line.lower())
    assert re.search(r"\b1\b", outbox_line), f"one event waits: {outbox_line!r}"
    assert "last delivery" in lower
    assert "collected" in lower and ("never collected" in lower or "not collected" in lower)
    for way in DISABLE_WAYS:
        assert way in text, f"{way!r} is not among the ways to disable"

    key_line = next(line for line in lines if "api key" in line.lower())
    assert API_KEY[:4] in key_line, key_line
    everything = json.dumps(answer.params)
    assert API_KEY not in everything, "the full API key must never be shown"


def test_status_when_off_shows_source_and_a_turn_on_button(bed: Testbed) -> None:
    bed.write_config(base_config(telemetryEnabled=False))
    bot = bed.start()

    answer = bot.answer("telemetry status")

    first = answer.params["text"].splitlines()[0]
    assert re.search(r"\b(off|disabled)\b", first), first
    assert "config" in first
    assert "on" in button_label(toggle_button(answer.blocks())).lower()


def test_status_shows_last_delivery_after_posthog_accepted(bed: Testbed) -> None:
    bed.write_config(base_config())
    bot = bed.start()
    assert bed.capture.wait_for_events(1, "startup"), "the startup event never arrived"
    today = datetime.now(timezone.utc)
    days = {today.date().isoformat(), (today - timedelta(minutes=5)).date().isoformat()}

    def delivery_recorded() -> bool:
        # No event waits any more, and the outbox file holds a time of today: the
        # delivery's record (it is written just after the events are removed).
        path = outbox_path(bed.config_path)
        text = path.read_text() if path.exists() else ""
        return outbox_events(bed.config_path) == [] and any(day in text for day in days)

    assert wait_until(delivery_recorded), "the delivery was never recorded"

    text = bot.answer("telemetry status").params["text"]

    line = next(line for line in text.splitlines() if "last delivery" in line.lower())
    assert any(day in line for day in days), f"no delivery time in {line!r}"
    outbox_line = next(line for line in text.splitlines() if "outbox" in line.lower())
    assert re.search(r"\b0\b", outbox_line), outbox_line


def test_status_shows_the_release_given_to_register(bed: Testbed) -> None:
    """The status must show the release the events carry (register's ``release``)."""
    bed.write_config(base_config())
    bot = bed.start(app_version="9.8.7", release="r-test-7")

    preview = json.loads(code_block(bot.answer("telemetry preview").params["text"]))
    status = bot.answer("telemetry status").params["text"]

    assert preview["properties"]["release"] == "r-test-7"
    assert "r-test-7" in status, f"status shows another release than the events: {status!r}"


# -- telemetry preview -------------------------------------------------------------------


def test_preview_answers_the_exact_heartbeat_json(bed: Testbed) -> None:
    before = bed.write_config(base_config())
    bot = bed.start(app_version="9.8.7", release="r-test-7")

    text = bot.answer("telemetry preview").params["text"]

    event = json.loads(code_block(text))
    assert set(event) == {"event", "distinct_id", "uuid", "timestamp", "properties"}
    assert event["event"] == "heartbeat"
    assert event["distinct_id"] == INSTANCE_ID
    assert is_uuid4(event["uuid"])
    stamp = datetime.fromisoformat(event["timestamp"])
    assert stamp.utcoffset() == timedelta(0), "timestamps are UTC"
    assert abs(datetime.now(timezone.utc) - stamp) < timedelta(minutes=5)
    properties = event["properties"]
    own = {key for key in properties if key not in SDK_PROPERTIES}
    assert own == SPEC_PROPERTIES | {"uptime_hours", "uptime_days"}
    # The SDK's own properties, as the installed SDK computes them, are shown too.
    assert {"$lib", "$lib_version", "$geoip_disable"} <= set(properties)
    assert properties["$geoip_disable"] is True
    assert properties["instance_id"] == INSTANCE_ID
    assert properties["app_version"] == "9.8.7"
    assert properties["release"] == "r-test-7"
    assert properties["$process_person_profile"] is False
    assert properties["uptime_hours"] == 0 and properties["uptime_days"] == 0
    bot.settle()
    assert bed.config_bytes() == before, "a preview writes nothing"


def test_preview_matches_the_heartbeat_that_is_really_sent(
    bed: Testbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEMETRY_HEARTBEAT_SECONDS", "1")
    bed.write_config(base_config())
    bot = bed.start(app_version="9.8.7", release="r-test-7")

    preview = json.loads(code_block(bot.answer("telemetry preview").params["text"]))
    assert bed.capture.wait_for_events(1, "heartbeat", timeout=15), "no heartbeat arrived"

    sent = bed.capture.events_named("heartbeat")[0]
    assert sent["distinct_id"] == preview["distinct_id"]
    assert sent["properties"] == preview["properties"]  # the SDK's own ones included


# -- telemetry reset-id ------------------------------------------------------------------


def test_reset_id_persists_a_new_id_and_empties_the_outbox(offline_bed: Testbed) -> None:
    bed = offline_bed
    bed.write_config(base_config())
    bot = bed.start()
    wait_for_startup_in_outbox(bed)

    text = bot.answer("telemetry reset-id").params["text"]

    new_id = bed.config()["telemetryInstanceId"]
    assert is_uuid4(new_id) and new_id != INSTANCE_ID
    assert INSTANCE_ID.encode() not in bed.config_bytes(), "the old ID is still in the file"
    assert new_id in text
    assert_host_keys_kept(bed)
    assert outbox_events(bed.config_path) == [], "events with the old ID still wait"

    status = bot.answer("telemetry status").params["text"]
    assert new_id in status and INSTANCE_ID not in status

    # Once PostHog is back, what leaves the machine carries the new ID only.
    bed.capture.set_mode(ACCEPT)
    assert bot.plugin.shutdown(timeout=5.0), "the shutdown event was not delivered"
    sent = bed.capture.events
    assert [e["event"] for e in sent] == ["shutdown"], sent
    assert {e["distinct_id"] for e in sent} == {new_id}
    assert {e["properties"]["instance_id"] for e in sent} == {new_id}
