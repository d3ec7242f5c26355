"""The local console: the real Bolt app and the real plugin, with Slack and PostHog replaced by
stand-ins on 127.0.0.1 whose traffic prints here. Each line typed is a message from an
admin in the admin channel. A demo is never counted: events go to the local PostHog
stand-in unless ``--posthog real`` is given.

EOF, Ctrl-C and SIGTERM all end it the same way: the "Shutting down" line, the
shutdown event (within TELEMETRY_SHUTDOWN_TIMEOUT), exit code 0.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from slackonos_telemetry.config.keys import (
    TELEMETRY_HOST,
    TELEMETRY_NOTICE_GRACE_SECONDS,
    TELEMETRY_STATE_DIR,
)
from slackonos_telemetry.run import signals
from slackonos_telemetry.run.local_slack import ADMIN_CHANNEL_ID, TEAM_ID, ApiCall, LocalSlack
from slackonos_telemetry.slack.admin_channel import AdminChannel, is_channel_id

ADMIN_USER_ID = "U0ADMIN01"
PROMPT = "you> "
_SHOWN_METHODS = {
    "chat.postMessage": "bot",
    "chat.postEphemeral": "bot (to you only)",
    "chat.update": "bot (updated)",
}


class _Stop(BaseException):
    """SIGTERM or SIGINT while the console waits for a line: end it as EOF does.

    Raised only while waiting: a command being handled (a config write, say) is never
    cut short; a signal then ends the console once that line is done.
    """


class ConsoleOutput:
    """Writes that never land after a bare prompt: output that comes while the prompt
    waits for a line (the first-run notice, an event) moves to its own line, and the
    prompt is shown again after it."""

    def __init__(self, out: TextIO, interactive: bool) -> None:
        self._out = out
        self._interactive = interactive
        self._prompting = False
        self._guard = threading.Lock()

    def show(self, text: str) -> None:
        with self._guard:
            if self._prompting:
                self._out.write("\n")
            self._out.write(text.rstrip("\n") + "\n")
            if self._prompting:
                self._out.write(PROMPT)
            self._out.flush()

    def prompt(self) -> None:
        if not self._interactive:
            return
        with self._guard:
            self._out.write(PROMPT)
            self._out.flush()
            self._prompting = True

    def line_read(self) -> None:
        with self._guard:
            self._prompting = False

    def interrupted(self) -> None:
        """Ctrl-C or SIGTERM while the prompt waits: end its line."""
        with self._guard:
            if self._prompting:
                self._out.write("\n")
                self._out.flush()
            self._prompting = False


def run_console(
    config_path: Path | None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    *,
    local_posthog: bool = True,
) -> int:
    """``config_path``: a real config the user named (``--config``); None for a demo
    config of the console's own. With the local PostHog stand-in, the state is the
    console's own too, so a demo never sends (nor swallows) a real run's events."""
    from slack_bolt import App
    from slack_bolt.request import BoltRequest
    from slack_sdk import WebClient

    from slackonos_telemetry.run.host_bot import build_host_app
    from slackonos_telemetry.run.local_posthog import LocalPostHog
    from slackonos_telemetry.telemetry import shutdown

    reader = stdin or sys.stdin
    output = ConsoleOutput(stdout or sys.stdout, interactive=reader.isatty())
    demo = Path(tempfile.mkdtemp(prefix="slackonos-console-"))
    config_given = config_path is not None
    config_path = config_path or demo / "config" / "config.json"
    admin_id, admin_name = _admin_channel(config_path)

    def show_call(call: ApiCall) -> None:
        who = _SHOWN_METHODS.get(call.method)
        if who is not None:
            # As Slack shows it: the three escapes of mrkdwn back to the characters.
            text = _as_shown(str(call.params.get("text") or "")).replace("\n", "\n    ")
            output.show(f"{who}> {text}")

    def show_event(event: dict[str, Any]) -> None:
        name = event.get("event")
        output.show(f"→ PostHog (local): {name} {json.dumps(event, separators=(',', ':'))}")

    posthog = LocalPostHog(show_event) if local_posthog else None
    if posthog is not None:
        # This process is the console: its telemetry goes to the stand-in, its state is
        # its own, and nothing leaves the machine, so no first-run grace holds it back.
        os.environ[TELEMETRY_HOST] = posthog.url
        os.environ[TELEMETRY_STATE_DIR] = str(demo / "state")
        os.environ.setdefault(TELEMETRY_NOTICE_GRACE_SECONDS, "0")
    slack = LocalSlack({admin_id: admin_name}, on_call=show_call)
    try:
        client = WebClient(token="xoxb-local-console", base_url=slack.url)
        # process_before_response: each answer is printed before the next prompt.
        app = App(client=client, signing_secret="local-console", process_before_response=True)
        build_host_app(app, config_path, chatty=True)
        _banner(output, config_path, config_given, admin_name, posthog)
        stopping = _Stopping()
        counter = itertools.count(1)
        try:
            for line in _lines(reader, output, stopping):
                if line.strip():
                    body = _message_event(line, admin_id, next(counter))
                    app.dispatch(BoltRequest(body=json.dumps(body), mode="socket_mode"))
                if stopping.requested:
                    break
        except (KeyboardInterrupt, _Stop):
            output.interrupted()
        _ignore_signals()
        output.show("Shutting down: the shutdown event gets at most TELEMETRY_SHUTDOWN_TIMEOUT.")
        shutdown.run("explicit")
    finally:
        slack.close()
        if posthog is not None:
            posthog.close()
        shutil.rmtree(demo, ignore_errors=True)
    return 0


class _Stopping:
    """What SIGTERM and SIGINT ask of the console (installed after the plugins: here the
    console is the host, and decides)."""

    def __init__(self) -> None:
        self.requested = False
        self.waiting_for_input = False
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.waiting_for_input:
            raise _Stop()


def _ignore_signals() -> None:
    # A second Ctrl-C while the shutdown event goes out must not cut it short.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)


def _as_shown(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _admin_channel(config_path: Path) -> tuple[str, str]:
    configured = AdminChannel(config_path).configured()
    if is_channel_id(configured):
        return configured, "admin"
    return ADMIN_CHANNEL_ID, configured


def _banner(
    output: ConsoleOutput, config_path: Path, config_given: bool, admin: str, posthog: Any
) -> None:
    from slackonos_telemetry.config.settings import resolve_settings
    from slackonos_telemetry.telemetry.consent import decide

    settings = resolve_settings(config_path)
    decision = decide(settings)
    state = "on" if decision.enabled else "off"
    if not decision.enabled:
        where = f": {decision.reason}" if decision.reason else ""
    elif settings.debug:
        where = "; TELEMETRY_DEBUG is set: each payload prints on stderr, nothing is sent"
    elif posthog is not None:
        where = (
            "; events go to a local PostHog stand-in and print here, so this demo is "
            "never counted (`run --console --posthog real` sends them)"
        )
    else:
        where = f", sent to {settings.host_shown}; unsent events wait in the outbox"
    if config_given:
        config = f"{config_path} (yours: what you switch here is saved there)"
    else:
        config = (
            f"{config_path} (the demo's own, removed at exit; nothing of ./config is read "
            "or changed: `run --console --config PATH` uses a real one)"
        )
    stand_ins = "Slack and PostHog are local stand-ins" if posthog else "Slack is a local stand-in"
    output.show(
        f"SlackONOS telemetry console: the real Bolt app and plugin; {stand_ins}.\n"
        f"Config file: {config}\n"
        f"Telemetry: {state} (source: {decision.source}){where}\n"
        "To see each payload on stderr instead: TELEMETRY_DEBUG=1 make run\n"
        f"Each line is a message from an admin in #{admin}. Type `help`; Ctrl-D quits."
    )


def _lines(reader: TextIO, output: ConsoleOutput, stopping: _Stopping) -> Iterator[str]:
    """The lines typed, until EOF. A signal is seen at once while we wait for a line
    (its handler raises _Stop), whichever thread the kernel delivered it to."""
    try:
        fd = reader.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd < 0:  # not a file (a test's StringIO): plain reads
        while True:
            output.prompt()
            text = reader.readline()
            output.line_read()
            if not text:
                return
            yield text.rstrip("\n")
    with signals.wakeups() as wakeup:
        pending = b""
        while True:
            output.prompt()
            while b"\n" not in pending:
                stopping.waiting_for_input = True
                try:
                    if stopping.requested:
                        raise _Stop()
                    ready = signals.readable(fd, wakeup)
                finally:
                    stopping.waiting_for_input = False
                if not ready:
                    continue  # another signal: its handler ran
                chunk = os.read(fd, 4096)
                if not chunk:
                    output.interrupted()  # Ctrl-D at the prompt: end its line
                    if pending:
                        yield pending.decode("utf-8", "replace")
                    return
                pending += chunk
            raw, _, pending = pending.partition(b"\n")
            output.line_read()
            yield raw.decode("utf-8", "replace").rstrip("\r")


def _message_event(text: str, channel_id: str, number: int) -> dict[str, Any]:
    now = time.time()
    return {
        "type": "event_callback",
        "team_id": TEAM_ID,
        "api_app_id": "A0LOCAL01",
        "event_id": f"Ev0LOCAL{number:06d}",
        "event_time": int(now),
        "event": {
            "type": "message",
            "channel": channel_id,
            "channel_type": "channel",
            "user": ADMIN_USER_ID,
            "text": text,
            "ts": f"{int(now)}.{number:06d}",
        },
    }
