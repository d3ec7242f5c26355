"""The telemetry status and the first-run notice as Slack messages: Block Kit with a
plain-text fallback, both saying what is and is not collected in the same words
(``telemetry.disclosure``, made from the allowlist the sender checks). Every value is
escaped for mrkdwn (``mrkdwn.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slackonos_telemetry.admin import StatusReport
from slackonos_telemetry.config.redact import mask_api_key
from slackonos_telemetry.slack.ids import TOGGLE_ACTION_ID, TURN_OFF, TURN_ON
from slackonos_telemetry.slack.mrkdwn import escape
from slackonos_telemetry.telemetry.disclosure import HOW_TO_DISABLE, NOT_COLLECTED, collected_names


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
    settings, decision = report.settings, report.decision
    state = decision.consent.value  # on, off, or withheld (nothing sent, nothing discarded)
    uptime = describe_uptime(uptime_seconds) if uptime_seconds is not None else "not running"
    facts = [
        ("State", f"{state} (source: {decision.source})"),
        ("Instance ID", report.instance_id_text()),
        ("Host", settings.host_shown),
        ("API key", mask_api_key(settings.api_key)),
        ("Version", f"{report.app_version} (release {report.release})"),
        ("Uptime", uptime),
        ("Outbox", f"{report.outbox.pending} waiting, {report.outbox.dropped} dropped"),
        ("Last delivery", report.outbox.last_delivery or "never"),
        ("State folder", f"{settings.state.folder} ({settings.state.reason})"),
    ]
    if report.first_send_at:
        facts.append(("First event leaves", report.first_send_at))
    notes = [f"Why: {decision.reason}"] if decision.reason else []
    if report.state_problem:
        notes.append(f"Problem: {report.state_problem}")
    fallback = [f"Telemetry is {state} (source: {decision.source})", *notes]
    fallback += [f"{label}: {value}" for label, value in facts[1:]]
    fallback += _disclosure_lines()
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(f"Telemetry is {state}")}]
    blocks += [_section(f":warning: {_fit(note, 2900)}") for note in notes]
    blocks.append(
        {
            "type": "section",
            "fields": [_mrkdwn(f"*{label}*\n{_fit(value, 1900)}") for label, value in facts],
        }
    )
    blocks += _disclosure_blocks(decision.enabled)
    return SlackMessage(escape("\n".join(fallback)), blocks)


def notice_message(grace: str | None) -> SlackMessage:
    """The first-run notice; ``grace``: when the first events leave, while they wait."""
    intro = "This bot sends anonymous usage telemetry (startup, a daily heartbeat, shutdown)."
    lines = [intro, *([grace] if grace else []), *_disclosure_lines()]
    lines.append("See it with `telemetry status`.")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain("About telemetry")},
        _section(
            "This bot sends *anonymous* usage telemetry: startup, a daily heartbeat, shutdown."
        ),
    ]
    if grace:
        blocks.append(_section(_fit(grace, 2900)))
    blocks += _disclosure_blocks(enabled=True)
    return SlackMessage(escape(" ".join(lines)), blocks)


def notice_text(grace: str | None) -> str:
    """The notice as one plain line, for a log."""
    lines = ["This bot sends anonymous usage telemetry.", *([grace] if grace else [])]
    return " ".join([*lines, *_disclosure_lines()])


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
        f"Collected, and nothing else: {collected_names()}.",
        "Never collected: " + "; ".join(NOT_COLLECTED) + ".",
        "To turn it off: " + "; or ".join(HOW_TO_DISABLE) + ".",
    ]


def _disclosure_blocks(enabled: bool) -> list[dict[str, Any]]:
    return [
        _section(f"*Collected, and nothing else:* {escape(collected_names())}"),
        _section(f"*Never collected:* {escape('; '.join(NOT_COLLECTED))}"),
        {
            "type": "context",
            "elements": [_mrkdwn("To turn it off: " + escape(" • ".join(HOW_TO_DISABLE)))],
        },
        {"type": "actions", "block_id": "telemetry-actions", "elements": [toggle_button(enabled)]},
    ]


def _fit(value: str, limit: int) -> str:
    """``value`` escaped, cut first (an entity is never cut in two) to stay within a
    Block Kit text limit once escaped."""
    escaped = escape(value)
    while len(escaped) > limit:
        value = value[: len(value) - (len(escaped) - limit) - 1] + "…"
        escaped = escape(value)
    return escaped


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:150]}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}
