"""Issue 12, what an operator meets outside the console: CI runs not counted (SPEC 3), a
preview that is exact (SPEC 6-7), and the small things (the button, a second register,
Ctrl-C, `flush` in debug, the build). Real CLI subprocesses, a real host process, a real
Bolt app over HTTP with signed requests, and a PostHog capture server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from posthog.version import VERSION as POSTHOG_VERSION
from slack_bolt import App
from slack_sdk import WebClient

from slackonos_telemetry import register
from slackonos_telemetry._version import __version__
from slackonos_telemetry.telemetry.events import EventName, RuntimeFacts, make_event
from tests.support.bots import (
    ADMIN,
    GENERAL,
    OTHER_USER,
    SECRET,
    Testbed,
    base_config,
    code_block,
    new_ts,
    open_testbed,
    toggle_button,
)
from tests.support.capture import capture_server
from tests.support.environment import run_cli
from tests.support.processes import (
    BOT_TOKEN,
    SIGNING_SECRET,
    WAIT,
    bot_process,
    event_callback,
    free_port,
    message_event,
    post_json,
    signed_headers,
    wait_for_port,
    write_json,
)
from tests.support.slack_api import SlackStandIn
from tests.support.trackers import (
    host_environ,
    outbox_for,
    pending,
    running_host,
    status_json,
    write_config,
)

REPO = Path(__file__).resolve().parents[1]
INSTANCE = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
CI_TRUE_WORDS = ("true", "1", "TRUE", "yes", "on")
CI_NOT_TRUE = ("false", "0", "no", "")
HOST_VERSION = "7.7.7-host"
HOST_RELEASE = "host-release-2024.06"
GENEROUS_SHUTDOWN = "10"


# -- CI runs are not counted (SPEC 3, item 5 of the order) -------------------------------------


@pytest.mark.parametrize("ci", CI_TRUE_WORDS)
def test_ci_set_to_a_true_word_turns_telemetry_off_by_default(config_path: Path, ci: str) -> None:
    text = run_cli("--config", str(config_path), "status", env={"CI": ci})
    assert text.returncode == 0, text.stderr
    # Withheld, not an opt-out: not counted, and no real run's waiting events discarded.
    assert text.stdout.splitlines()[0] == "Telemetry: withheld (source: env:CI)", text.stdout
    assert "CI" in text.stdout.splitlines()[1], "the reason is given"

    report = status_json(config_path, env={"CI": ci})
    assert report["enabled"] is False
    assert report["source"] == "env:CI"
    assert report["reason"] and "CI" in report["reason"]
    assert not config_path.exists(), "status writes nothing"


@pytest.mark.parametrize("ci", CI_NOT_TRUE)
def test_ci_set_to_anything_but_a_true_word_does_not_turn_telemetry_off(
    config_path: Path, ci: str
) -> None:
    report = status_json(config_path, env={"CI": ci})
    assert (report["enabled"], report["source"]) == (True, "default")


@pytest.mark.parametrize(
    ("where", "source"),
    [("TELEMETRY_ENABLED", "env:TELEMETRY_ENABLED"), ("telemetryEnabled", "config")],
)
def test_an_explicit_enable_wins_over_ci(config_path: Path, where: str, source: str) -> None:
    env = {"CI": "true"}
    if where == "TELEMETRY_ENABLED":
        env["TELEMETRY_ENABLED"] = "true"
    else:
        write_config(config_path, {"telemetryEnabled": True})
    report = status_json(config_path, env=env)
    assert (report["enabled"], report["source"]) == (True, source)


@pytest.mark.parametrize("counted", [False, True], ids=["CI", "CI+TELEMETRY_ENABLED=true"])
def test_a_bot_run_by_its_test_suite_in_ci_is_not_counted(config_path: Path, counted: bool) -> None:
    with capture_server() as capture:
        extra = {"CI": "true", "TELEMETRY_SHUTDOWN_TIMEOUT": GENEROUS_SHUTDOWN}
        if counted:
            extra["TELEMETRY_ENABLED"] = "true"
        with running_host(config_path, env=host_environ(capture.url, **extra)) as host:
            if counted:
                assert capture.wait_for_events(1, "startup", timeout=WAIT), host.stderr
            host.send("exit")
            assert host.wait_exit(30) == 0, host.stderr
        if counted:
            assert {event["event"] for event in capture.events} == {"startup", "shutdown"}
        else:
            assert capture.requests == [], "a CI run was counted"
            assert pending(config_path) == []


# -- a preview that is exact (SPEC 6, 7) --------------------------------------------------------


def _cli_preview(config_path: Path, name: str, cwd: Path) -> tuple[dict[str, Any], str]:
    result = run_cli("--config", str(config_path), "preview", name, cwd=cwd)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data, result.stderr


def test_preview_before_any_run_says_it_uses_this_packages_version(
    config_path: Path, tmp_path: Path
) -> None:
    event, said = _cli_preview(config_path, "heartbeat", tmp_path)
    assert event["properties"]["app_version"] == __version__
    assert "app_version: this package's version" in said, said
    assert "release: " in said, said


def test_cli_preview_uses_what_the_bot_last_ran_with_and_is_what_arrived(
    config_path: Path,
) -> None:
    write_config(config_path, {"telemetryInstanceId": INSTANCE})
    with capture_server() as capture:
        env = host_environ(
            capture.url,
            SLACKONOS_RELEASE=HOST_RELEASE,
            TELEMETRY_SHUTDOWN_TIMEOUT=GENEROUS_SHUTDOWN,
        )
        with running_host(config_path, "--app-version", HOST_VERSION, env=env) as host:
            assert capture.wait_for_events(1, "startup", timeout=WAIT), host.stderr
            host.send("exit")
            assert host.wait_exit(30) == 0, host.stderr
        assert capture.wait_for_events(1, "shutdown", timeout=WAIT)
        received = {event["event"]: event for event in capture.events}

    # Run where `git describe` gives another label, without SLACKONOS_RELEASE: the
    # preview must still say what the bot sent, and where each value came from.
    for name in ("startup", "shutdown"):
        preview, said = _cli_preview(config_path, name, REPO)
        assert preview["properties"]["app_version"] == HOST_VERSION
        assert preview["properties"]["release"] == HOST_RELEASE
        assert "app_version: what the bot last ran with" in said, said
        assert "release: what the bot last ran with" in said, said
        # Exactly what arrived, the SDK's own properties ($lib, $os, ...) included.
        assert preview["event"] == received[name]["event"]
        assert preview["distinct_id"] == received[name]["distinct_id"]
        assert preview["properties"] == received[name]["properties"], name
        assert preview["properties"]["$lib_version"] == POSTHOG_VERSION
    # Kept beside the outbox, not in the user's config file.
    assert HOST_VERSION not in config_path.read_text(encoding="utf-8")


def test_slack_preview_is_the_heartbeat_that_arrives(
    monkeypatch: pytest.MonkeyPatch, config_path: Path
) -> None:
    monkeypatch.setenv("TELEMETRY_HEARTBEAT_SECONDS", "1")
    with open_testbed(monkeypatch, config_path) as bed:
        bed.write_config(base_config())
        bot = bed.start(app_version="4.5.6-slack", release="slack-release")
        assert bed.capture.wait_for_events(1, "heartbeat", timeout=WAIT), bed.capture.events
        text = str(bot.answer("telemetry preview").params["text"])
        received = bed.capture.events_named("heartbeat")[0]

    assert "exactly" in text and "SDK's own properties included" in text, text
    preview = json.loads(code_block(text))
    assert preview["properties"]["app_version"] == "4.5.6-slack"
    assert preview["properties"]["release"] == "slack-release"
    assert preview["distinct_id"] == received["distinct_id"]
    # The uptime is whole hours: the same 0 in the preview and in the heartbeat.
    assert preview["properties"] == received["properties"]
    assert preview["properties"]["$lib_version"] == POSTHOG_VERSION


# -- the button ----------------------------------------------------------------------------------


@pytest.fixture
def bed(monkeypatch: pytest.MonkeyPatch, config_path: Path) -> Iterator[Testbed]:
    with open_testbed(monkeypatch, config_path) as testbed:
        yield testbed


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


# -- a second register ---------------------------------------------------------------------------


@pytest.fixture
def quiet_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    """A Bolt app whose plugins send nothing (and so hook no signal in this process)."""
    monkeypatch.setenv("TELEMETRY_ENABLED", "false")
    with SlackStandIn() as slack:
        yield App(client=WebClient(token="xoxb-test", base_url=slack.url), signing_secret=SECRET)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and record.name.startswith("slackonos_telemetry")
    ]


def test_a_second_register_with_another_config_warns_naming_both_paths(
    quiet_app: App, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, other = tmp_path / "a" / "config.json", tmp_path / "b" / "config.json"
    plugin = register(quiet_app, config_path=str(first))
    try:
        with caplog.at_level(logging.WARNING, logger="slackonos_telemetry"):
            again = register(quiet_app, config_path=str(other))
        assert again is plugin
        assert plugin.config_path == first, "the first path is kept"
        (warning,) = _warnings(caplog)
        assert str(first) in warning and str(other) in warning, warning
    finally:
        plugin.shutdown(timeout=0.5)


@pytest.mark.parametrize("spelling", ["Path", "relative"])
def test_a_second_register_naming_the_same_file_another_way_does_not_warn(
    quiet_app: App, tmp_path: Path, caplog: pytest.LogCaptureFixture, spelling: str
) -> None:
    path = tmp_path / "config" / "config.json"  # the working directory is tmp_path
    plugin = register(quiet_app, config_path=str(path))
    try:
        same: str | Path = path if spelling == "Path" else "config/config.json"
        with caplog.at_level(logging.WARNING, logger="slackonos_telemetry"):
            register(quiet_app, config_path=same)
        assert _warnings(caplog) == []
    finally:
        plugin.shutdown(timeout=0.5)


# -- Ctrl-C ----------------------------------------------------------------------------------------


def test_ctrl_c_stops_an_http_bot_cleanly(config_path: Path) -> None:
    write_json(config_path, {"telemetryNoticeShown": True})
    port = free_port()
    slack = SlackStandIn()
    with slack, capture_server() as capture:
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.url,
            "TELEMETRY_HOST": capture.url,
            "TELEMETRY_SHUTDOWN_TIMEOUT": GENEROUS_SHUTDOWN,
        }
        args = ("--config", str(config_path), "run", "--http", str(port))
        with bot_process(*args, env=env) as bot:
            wait_for_port(port, bot)
            body = json.dumps(event_callback(message_event("telemetry status")))
            url = f"http://127.0.0.1:{port}/slack/events"
            assert post_json(url, body, signed_headers(body)) == 200
            assert slack.wait_for_calls("chat.postMessage", 1, WAIT), bot.describe()
            assert capture.wait_for_events(1, "startup", timeout=WAIT), bot.describe()

            code, _ = bot.timed_exit(lambda: bot.signal(signal.SIGINT))

            assert code == 0, bot.describe()
            assert "Traceback" not in bot.stderr, bot.describe()
        assert len(capture.events_named("shutdown")) == 1, capture.events


# A host that turns SIGTERM into KeyboardInterrupt (a common idiom), then adds telemetry.
def test_flush_with_debug_on_and_events_waiting_keeps_them_and_exits_1(config_path: Path) -> None:
    write_config(config_path, {"telemetryInstanceId": INSTANCE})
    facts = RuntimeFacts.gather("1.0", "r1")
    outbox_for(config_path).add(make_event(EventName.STARTUP, INSTANCE, facts, 0.0))

    result = run_cli("--config", str(config_path), "flush", env={"TELEMETRY_DEBUG": "1"})

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "TELEMETRY_DEBUG" in result.stderr and "1 event(s) kept" in result.stderr
    assert len(pending(config_path)) == 1
