"""Settings (docs/CONTRACT.md, "Settings"): where `enabled`, the API key and the host come
from, first match wins, and a run in CI is not counted.

Every case writes a real config file (or none) in a temp dir and resolves the
settings from it with an explicit environment, as the plugin and the CLI do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from slackonos_telemetry.config.settings import resolve_settings
from slackonos_telemetry.telemetry.consent import Consent, Decision, decide
from tests.support.capture import capture_server
from tests.support.cli import run_cli, status_json
from tests.support.files import pending, write_config
from tests.support.processes import GENEROUS_SHUTDOWN, WAIT
from tests.support.trackers import tracker_environ, tracker_host

# The defaults are spelled out from the spec, not imported from the code under test.
SPEC_DEFAULT_API_KEY = "phc_dkh7jm9oxMh7lLKr8TRBY0eKQ5Jn708pXk9McRC0qlO"
SPEC_DEFAULT_HOST = "https://us.i.posthog.com"
SPEC_DEFAULT_SHUTDOWN_TIMEOUT = 2.0
SPEC_DEFAULT_HEARTBEAT_SECONDS = 86400.0
BOOLEAN_WORDS = ("true", "false", "yes", "no", "on", "off", "1", "0")

NO_FILE = object()
"""Config marker: the config file does not exist."""

TRUNCATED = '{\n  "telemetryEnabled": true,\n  "adminChannel": "C0123ABCD"'
NOT_JSON = "telemetryEnabled = true\n"
ARRAY = '[{"telemetryEnabled": true}]\n'

DNT = "DO_NOT_TRACK"
TE = "TELEMETRY_ENABLED"
SRC_DNT = "env:DO_NOT_TRACK"
SRC_TE = "env:TELEMETRY_ENABLED"
SRC_HOST_ENV = "env:TELEMETRY_HOST"


@dataclass(frozen=True)
class Case:
    id: str
    config: Any  # a dict (written as JSON), a str (written as is) or NO_FILE
    env: dict[str, str]
    enabled: bool
    source: str
    # Fragments the reason must contain; None: no reason is required.
    reason_has: tuple[str, ...] | None = None
    api_key: str | None = None
    host: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def consent(self) -> Consent:
        """A clear no is an opt-out (OFF); what cannot be understood (a reason is owed, but
        not DO_NOT_TRACK's), a config error and CI withhold instead."""
        if self.enabled:
            return Consent.ON
        not_understood = self.reason_has is not None and self.source != SRC_DNT
        if not_understood or self.source in ("config-error", "env:CI"):
            return Consent.WITHHELD
        return Consent.OFF


def _enabled_cases() -> list[Case]:
    cases = [
        # 5. default
        Case("default-no-file", NO_FILE, {}, True, "default"),
        Case("default-empty-object", {}, {}, True, "default"),
        Case("default-foreign-keys-only", {"adminChannel": "C0123ABCD"}, {}, True, "default"),
        # 1. DO_NOT_TRACK
        Case("dnt-1-beats-env-true", NO_FILE, {DNT: "1", TE: "true"}, False, SRC_DNT, (DNT,)),
        Case(
            "dnt-1-beats-config-true",
            {"telemetryEnabled": True},
            {DNT: "1"},
            False,
            SRC_DNT,
            (DNT,),
        ),
        Case("dnt-true", NO_FILE, {DNT: "true"}, False, SRC_DNT, (DNT,)),
        Case("dnt-any-text", NO_FILE, {DNT: "please"}, False, SRC_DNT, (DNT,)),
        Case("dnt-beats-config-error", TRUNCATED, {DNT: "1"}, False, SRC_DNT, (DNT,)),
        Case(
            "dnt-beats-bad-host",
            {"telemetryHost": "ftp://x"},
            {DNT: "yes"},
            False,
            SRC_DNT,
            (DNT,),
        ),
        Case("dnt-0-ignored", NO_FILE, {DNT: "0"}, True, "default"),
        Case("dnt-false-ignored", NO_FILE, {DNT: "false"}, True, "default"),
        Case("dnt-empty-ignored", NO_FILE, {DNT: ""}, True, "default"),
        Case("dnt-0-then-env", NO_FILE, {DNT: "0", TE: "false"}, False, SRC_TE),
        Case("dnt-false-then-config", {"telemetryEnabled": False}, {DNT: "false"}, False, "config"),
        Case("dnt-empty-then-config", {"telemetryEnabled": True}, {DNT: ""}, True, "config"),
        # 2. TELEMETRY_ENABLED
        Case(
            "env-maybe",
            {"telemetryEnabled": True},
            {TE: "maybe"},
            False,
            SRC_TE,
            (TE, "maybe", *BOOLEAN_WORDS),
        ),
        Case("env-empty-ignored", {"telemetryEnabled": False}, {TE: ""}, False, "config"),
        Case("env-empty-ignored-default", NO_FILE, {TE: ""}, True, "default"),
        Case("env-true-beats-config-error", NOT_JSON, {TE: "true"}, True, SRC_TE),
        Case("env-false-beats-config-error", NOT_JSON, {TE: "false"}, False, SRC_TE),
        # 3. the config file unreadable beats telemetryEnabled in it
        Case(
            "config-truncated",
            TRUNCATED,
            {},
            False,
            "config-error",
            ("config.json", "line 3", "column"),
        ),
        Case("config-not-json", NOT_JSON, {}, False, "config-error", ("config.json", "line 1")),
        Case("config-array", ARRAY, {}, False, "config-error", ("config.json",)),
        # 4. telemetryEnabled in the config file
        Case("config-true", {"telemetryEnabled": True}, {}, True, "config"),
        Case("config-false", {"telemetryEnabled": False}, {}, False, "config"),
        Case("config-string-false", {"telemetryEnabled": "false"}, {}, False, "config"),
        Case("config-string-true", {"telemetryEnabled": "true"}, {}, True, "config"),
        Case("config-string-OFF", {"telemetryEnabled": "OFF"}, {}, False, "config"),
        Case("config-string-Yes", {"telemetryEnabled": "Yes"}, {}, True, "config"),
        Case("config-string-0", {"telemetryEnabled": "0"}, {}, False, "config"),
        Case("config-string-1", {"telemetryEnabled": "1"}, {}, True, "config"),
        Case(
            "config-nope",
            {"telemetryEnabled": "nope"},
            {},
            False,
            "config",
            ("telemetryEnabled", "nope", *BOOLEAN_WORDS),
        ),
        Case(
            "config-int-0",
            {"telemetryEnabled": 0},
            {},
            False,
            "config",
            ("telemetryEnabled",),
        ),
        Case(
            "config-int-1",
            {"telemetryEnabled": 1},
            {},
            False,
            "config",
            ("telemetryEnabled",),
        ),
        Case(
            "config-null",
            {"telemetryEnabled": None},
            {},
            False,
            "config",
            ("telemetryEnabled", "null"),
        ),
        Case(
            "config-empty-string",
            {"telemetryEnabled": ""},
            {},
            False,
            "config",
            ("telemetryEnabled",),
        ),
        Case(
            "config-list",
            {"telemetryEnabled": [True]},
            {},
            False,
            "config",
            ("telemetryEnabled",),
        ),
    ]
    # Every boolean word, any case, from the environment beats the config file.
    for word, value in [
        ("true", True),
        ("yes", True),
        ("on", True),
        ("1", True),
        ("TRUE", True),
        ("Yes", True),
        (" on ", True),
        ("false", False),
        ("no", False),
        ("off", False),
        ("0", False),
        ("FALSE", False),
        ("No", False),
    ]:
        cases.append(
            Case(
                f"env-word-{word.strip()}",
                {"telemetryEnabled": not value},
                {TE: word},
                value,
                SRC_TE,
            )
        )
    return cases


def _key_and_host_cases() -> list[Case]:
    return [
        Case(
            "defaults",
            {},
            {},
            True,
            "default",
            api_key=SPEC_DEFAULT_API_KEY,
            host=SPEC_DEFAULT_HOST,
        ),
        Case(
            "config-key-and-host",
            {"telemetryApiKey": "phc_fromconfig", "telemetryHost": "https://posthog.example.com"},
            {},
            True,
            "default",
            api_key="phc_fromconfig",
            host="https://posthog.example.com",
        ),
        Case(
            "env-key-and-host-beat-config",
            {"telemetryApiKey": "phc_fromconfig", "telemetryHost": "https://posthog.example.com"},
            {"TELEMETRY_API_KEY": "phc_fromenv", "TELEMETRY_HOST": "http://127.0.0.1:8000"},
            True,
            "default",
            api_key="phc_fromenv",
            host="http://127.0.0.1:8000",
        ),
        Case(
            "env-key-beats-bad-config-key",
            {"telemetryApiKey": ""},
            {"TELEMETRY_API_KEY": "phc_fromenv"},
            True,
            "default",
            api_key="phc_fromenv",
        ),
        Case(
            "env-host-beats-bad-config-host",
            {"telemetryHost": "ftp://x"},
            {"TELEMETRY_HOST": "https://posthog.example.com"},
            True,
            "default",
            host="https://posthog.example.com",
        ),
        Case(
            "config-key-empty",
            {"telemetryApiKey": ""},
            {},
            False,
            "config",
            ("telemetryApiKey",),
        ),
        Case(
            "config-key-blank",
            {"telemetryApiKey": "   "},
            {},
            False,
            "config",
            ("telemetryApiKey",),
        ),
        Case(
            "config-key-number",
            {"telemetryApiKey": 12345},
            {},
            False,
            "config",
            ("telemetryApiKey",),
        ),
        Case(
            "config-key-null",
            {"telemetryApiKey": None},
            {},
            False,
            "config",
            ("telemetryApiKey",),
        ),
        Case(
            "config-key-empty-beats-config-true",
            {"telemetryEnabled": True, "telemetryApiKey": ""},
            {},
            False,
            "config",
            ("telemetryApiKey",),
        ),
        Case(
            "config-host-empty",
            {"telemetryHost": ""},
            {},
            False,
            "config",
            ("telemetryHost",),
        ),
        Case(
            "config-host-number",
            {"telemetryHost": 443},
            {},
            False,
            "config",
            ("telemetryHost",),
        ),
        Case(
            "config-host-ftp",
            {"telemetryHost": "ftp://x"},
            {},
            False,
            "config",
            ("telemetryHost", "ftp://x"),
        ),
        Case(
            "config-host-not-a-url",
            {"telemetryHost": "not a url"},
            {},
            False,
            "config",
            ("telemetryHost", "not a url"),
        ),
        Case(
            "config-host-no-hostname",
            {"telemetryHost": "https://"},
            {},
            False,
            "config",
            ("telemetryHost",),
        ),
        Case(
            "env-host-ftp",
            {},
            {"TELEMETRY_HOST": "ftp://x"},
            False,
            SRC_HOST_ENV,
            ("TELEMETRY_HOST", "ftp://x"),
        ),
        Case(
            "env-host-not-a-url",
            {},
            {"TELEMETRY_HOST": "not a url"},
            False,
            SRC_HOST_ENV,
            ("TELEMETRY_HOST", "not a url"),
        ),
        Case(
            "env-host-ftp-beats-good-config-host",
            {"telemetryHost": "https://posthog.example.com"},
            {"TELEMETRY_HOST": "ftp://x"},
            False,
            SRC_HOST_ENV,
            ("TELEMETRY_HOST", "ftp://x"),
        ),
    ]


CASES = _enabled_cases() + _key_and_host_cases()


def _write_config(path: Path, config: Any) -> None:
    if config is NO_FILE:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    text = config if isinstance(config, str) else json.dumps(config, indent=2)
    path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_precedence(case: Case, config_path: Path) -> None:
    _write_config(config_path, case.config)
    before = config_path.read_bytes() if config_path.exists() else None

    settings = resolve_settings(config_path, environ=dict(case.env))
    decision = decide(settings)

    assert (decision.enabled, decision.source) == (case.enabled, case.source), decision.reason
    if case.enabled:
        assert decision.reason is None
    if case.reason_has is not None:
        assert decision.reason, f"no reason given for {case.id}"
        for fragment in case.reason_has:
            assert fragment in decision.reason, (fragment, decision.reason)
    assert decision.consent is case.consent, decision
    if case.api_key is not None:
        assert settings.api_key == case.api_key
    if case.host is not None:
        assert settings.host == case.host
    # Resolving settings only reads: the file is as it was, or still missing.
    assert (config_path.read_bytes() if config_path.exists() else None) == before


def test_config_error_reason_names_the_file(config_path: Path) -> None:
    _write_config(config_path, TRUNCATED)
    expected = _json_error_position(TRUNCATED)

    decision = _decided(config_path, {})

    assert decision.source == "config-error"
    assert decision.consent is Consent.WITHHELD
    assert decision.reason is not None
    assert str(config_path) in decision.reason
    assert f"line {expected[0]}, column {expected[1]}" in decision.reason


def test_settings_are_read_fresh_each_time(config_path: Path) -> None:
    _write_config(config_path, {"telemetryEnabled": True})
    assert _decided(config_path, {}).enabled is True

    _write_config(config_path, {"telemetryEnabled": False})

    assert _decided(config_path, {}).enabled is False


TUNING_DEFAULTS = {
    "TELEMETRY_SHUTDOWN_TIMEOUT": ("shutdown_timeout", SPEC_DEFAULT_SHUTDOWN_TIMEOUT),
    "TELEMETRY_HEARTBEAT_SECONDS": ("heartbeat_seconds", SPEC_DEFAULT_HEARTBEAT_SECONDS),
}


@pytest.mark.parametrize("name", sorted(TUNING_DEFAULTS))
@pytest.mark.parametrize("bad", ["abc", "-1", "nan", "inf", "1e999", "2s"])
def test_bad_tuning_value_falls_back_with_warning(name: str, bad: str, config_path: Path) -> None:
    attribute, default = TUNING_DEFAULTS[name]

    settings = resolve_settings(config_path, environ={name: bad})

    assert getattr(settings, attribute) == default
    assert any(name in warning for warning in settings.warnings), settings.warnings
    # A tuning mistake does not turn telemetry off.
    decision = decide(settings)
    assert (decision.enabled, decision.source) == (True, "default")


@pytest.mark.parametrize("name", sorted(TUNING_DEFAULTS))
def test_tuning_defaults_and_good_values(name: str, config_path: Path) -> None:
    attribute, default = TUNING_DEFAULTS[name]

    unset = resolve_settings(config_path, environ={})
    empty = resolve_settings(config_path, environ={name: ""})
    good = resolve_settings(config_path, environ={name: "5.5"})

    assert getattr(unset, attribute) == default
    assert getattr(empty, attribute) == default
    assert getattr(good, attribute) == 5.5
    assert unset.warnings == empty.warnings == good.warnings == ()


def test_status_shows_tuning_warning(config_path: Path) -> None:
    result = run_cli(
        "--config", str(config_path), "status", env={"TELEMETRY_HEARTBEAT_SECONDS": "soon"}
    )

    assert result.returncode == 0, result.stderr
    warning_lines = [line for line in result.stdout.splitlines() if "Warning" in line]
    assert any("TELEMETRY_HEARTBEAT_SECONDS" in line for line in warning_lines), result.stdout


def _decided(config_path: Path, env: dict[str, str]) -> Decision:
    return decide(resolve_settings(config_path, environ=env))


def _json_error_position(text: str) -> tuple[int, int]:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.lineno, exc.colno
    raise AssertionError("expected invalid JSON")


# -- CI runs are not counted (docs/CONTRACT.md, "On, off and withheld", its fifth rule) ---------

CI_TRUE_WORDS = ("true", "1", "TRUE", "yes", "on")
CI_NOT_TRUE = ("false", "0", "no", "")


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
        with tracker_host(config_path, env=tracker_environ(capture.url, **extra)) as host:
            if counted:
                assert capture.wait_for_events(1, "startup", timeout=WAIT), host.stderr
            host.send_line("exit")
            assert host.wait_exit(30) == 0, host.stderr
        if counted:
            assert {event["event"] for event in capture.events} == {"startup", "shutdown"}
        else:
            assert capture.requests == [], "a CI run was counted"
            assert pending(config_path) == []
