"""What is said to be collected is what goes on the wire (docs/CONTRACT.md, "Events on the
wire"): the first-run notice, `status` (CLI and Slack), docs/TELEMETRY.md's field table
and the README's list name exactly the properties a real request carries, no more and
no fewer, and the SDK's properties that repeat ours are not sent.

A real tracker process sends all three events through the real posthog SDK to the
capture server; the texts come from the CLI, the Slack stand-in and the repository.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from slackonos_telemetry.telemetry.events import SDK_DROPPED
from tests.support.bots import Testbed, base_config, open_testbed
from tests.support.capture import CaptureServer, capture_server
from tests.support.cli import cli
from tests.support.trackers import tracker_environ, tracker_host

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def on_the_wire(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Each event's property names, from requests captured on the wire."""
    config_path = tmp_path_factory.mktemp("wire") / "config" / "config.json"
    with capture_server() as server:
        env = tracker_environ(server.url, TELEMETRY_HEARTBEAT_SECONDS="1", TELEMETRY_DEBUG="")
        with tracker_host(config_path, env=env) as host:
            assert server.wait_for_events(1, name="heartbeat", timeout=20), host.stderr
            host.send_line("exit")
            assert server.wait_for_events(1, name="shutdown", timeout=20), host.stderr
        return _names_by_event(server)


def _names_by_event(server: CaptureServer) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for event in server.events:
        found.setdefault(str(event["event"]), set()).update(event["properties"])
    return found


def _all(on_the_wire: dict[str, set[str]]) -> set[str]:
    return set().union(*on_the_wire.values())


def _named(text: str, candidates: set[str]) -> set[str]:
    """The property names among ``candidates`` that ``text`` mentions as a whole word."""
    return {
        name
        for name in candidates
        if re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", text) is not None
    }


def _candidates(on_the_wire: dict[str, set[str]]) -> set[str]:
    # What is sent, and what the SDK would add that we take out.
    return _all(on_the_wire) | set(SDK_DROPPED) | {"$release_id"}


def test_the_wire_carries_the_allowlist_and_not_the_sdks_repeats(
    on_the_wire: dict[str, set[str]],
) -> None:
    from slackonos_telemetry.telemetry.events import wire_property_names

    assert set(on_the_wire) == {"startup", "heartbeat", "shutdown"}
    for name, properties in on_the_wire.items():
        assert properties == wire_property_names(name), name
        assert not properties & set(SDK_DROPPED), properties


def test_the_docs_field_table_is_what_is_sent(on_the_wire: dict[str, set[str]]) -> None:
    text = (ROOT / "docs" / "TELEMETRY.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| .+ \| (.+) \|$", text, re.MULTILINE)
    table = {name for name, _ in rows}
    assert table == _all(on_the_wire), table ^ _all(on_the_wire)
    for name, carried_by in rows:
        carriers = {event for event, names in on_the_wire.items() if name in names}
        expected = carriers if len(carriers) == 1 else {"startup", "heartbeat", "shutdown"}
        assert carried_by.startswith("every event") == (len(expected) == 3), (name, carried_by)
        if len(expected) == 1:
            assert carried_by == next(iter(expected)), (name, carried_by)


def test_the_readme_list_is_what_is_sent(on_the_wire: dict[str, set[str]]) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## What it collects", 1)[1].split("\n## ", 1)[0]
    assert _named(section, _candidates(on_the_wire)) == _all(on_the_wire)


def test_cli_status_names_what_is_sent(on_the_wire: dict[str, set[str]], config_path: Path) -> None:
    collected = [line for line in cli(config_path, "status").splitlines() if "Collected" in line]
    assert len(collected) == 1
    assert _named(collected[0], _candidates(on_the_wire)) == _all(on_the_wire)


@pytest.fixture
def bed(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> Iterator[Testbed]:
    with open_testbed(monkeypatch, config_path) as testbed:
        yield testbed


def test_the_notice_and_slack_status_name_what_is_sent(
    on_the_wire: dict[str, set[str]], bed: Testbed
) -> None:
    bed.write_config(base_config(telemetryNoticeShown=False))
    bot = bed.start()
    notices = bed.slack.wait_for_calls("chat.postMessage", 1)
    status = bot.answer("telemetry status")

    for call in (notices[0], status):
        texts = [str(call.params["text"]), *_block_texts(call.blocks())]
        for text in texts:
            named = _named(text, _candidates(on_the_wire))
            assert named <= _all(on_the_wire), named - _all(on_the_wire)
        assert _named(texts[0], _candidates(on_the_wire)) == _all(on_the_wire), texts[0]


def _block_texts(blocks: list[dict[str, object]]) -> Iterator[str]:
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            yield str(text.get("text"))
        for element in block.get("elements", []) or []:  # type: ignore[attr-defined]
            if isinstance(element, dict) and isinstance(element.get("text"), str):
                yield str(element["text"])
