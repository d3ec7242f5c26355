"""The telemetry status and the first-run notice as Slack messages: Block Kit with a
plain-text fallback, both saying what is and is not collected in the same words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slackonos_telemetry.admin import StatusReport
from slackonos_telemetry.config.redact import mask_api_key
from slackonos_telemetry.slack.ids import TOGGLE_ACTION_ID, TURN_OFF, TURN_ON
from slackonos_telemetry.telemetry.disclosure import COLLECTED, HOW_TO_DISABLE, NOT_COLLECTED


@dataclass(frozen=True)
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]] | None = None


def describe_uptime(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def status_message(report: StatusReport, uptime_seconds: float | None) -> SlackMessage:
    settings = report.settings
    state = "on" if settings.enabled else "off"
    uptime = describe_uptime(uptime_seconds) if uptime_seconds is not None else "not running"
    facts = [
        ("State", f"{state} (source: {settings.source})"),
        ("Instance ID", report.instance_id_text()),
        ("Host", settings.host_shown),
        ("API key", mask_api_key(settings.api_key)),
        ("Version", f"{report.app_version} (release {report.release})"),
        ("Uptime", uptime),
        ("Outbox", f"{report.outbox.pending} waiting, {report.outbox.dropped} dropped"),
        ("Last delivery", report.outbox.last_delivery or "never"),
    ]
    fallback = [f"Telemetry is {state} (source: {settings.source})"]
    if settings.reason:
        fallback.append(f"Why: {settings.reason}")
    fallback += [f"{label}: {value}" for label, value in facts[1:]]
    fallback += _disclosure_lines()
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(f"Telemetry is {state}")}]
    if settings.reason:
        blocks.append(_section(f":warning: {settings.reason}"))
    blocks.append(
        {"type": "section", "fields": [_mrkdwn(f"*{label}*\n{value}") for label, value in facts]}
    )
    blocks += _disclosure_blocks(settings.enabled)
    return SlackMessage("\n".join(fallback), blocks)


def notice_message(enabled: bool) -> SlackMessage:
    intro = "This bot sends anonymous usage telemetry (startup, a daily heartbeat, shutdown)."
    text = " ".join([intro, *_disclosure_lines(), "See it with `telemetry status`."])
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain("About telemetry")},
        _section(
            "This bot sends *anonymous* usage telemetry: startup, a daily heartbeat, shutdown."
        ),
        *_disclosure_blocks(enabled),
    ]
    return SlackMessage(text, blocks)


def toggle_button(enabled: bool) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": TOGGLE_ACTION_ID,
        "text": _plain("Turn telemetry off" if enabled else "Turn telemetry on"),
        "value": TURN_OFF if enabled else TURN_ON,
        "style": "danger" if enabled else "primary",
    }


def _disclosure_lines() -> list[str]:
    return [
        "Collected: " + "; ".join(COLLECTED) + ".",
        "Never collected: " + "; ".join(NOT_COLLECTED) + ".",
        "To turn it off: " + "; or ".join(HOW_TO_DISABLE) + ".",
    ]


def _disclosure_blocks(enabled: bool) -> list[dict[str, Any]]:
    return [
        _section("*Collected:* " + "; ".join(COLLECTED)),
        _section("*Never collected:* " + "; ".join(NOT_COLLECTED)),
        {"type": "context", "elements": [_mrkdwn("To turn it off: " + " • ".join(HOW_TO_DISABLE))]},
        {"type": "actions", "elements": [toggle_button(enabled)]},
    ]


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:150]}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text[:2000]}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text[:3000])}
