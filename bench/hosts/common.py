"""What every bench host shares: unbuffered output, a lifetime cap, stdin commands that a
signal interrupts at once, and the Bolt app a host builds.

Light on purpose: a host that imports this pays nothing the measured code would not.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

DEFAULT_LIFETIME_SECONDS = 400.0
SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"


def emit(line: str) -> None:
    """One line on stdout without Python's buffered writer: safe from signal handlers
    and any thread."""
    data = (line + "\n").encode()
    while data:
        try:
            written = os.write(1, data)
        except InterruptedError:
            continue
        except OSError:
            return  # the bench went away: nothing to tell
        data = data[written:]


def emit_json(tag: str, value: Any) -> None:
    emit(f"{tag} {json.dumps(value)}")


def start_lifetime_cap() -> None:
    """End the process with os._exit(4) after BENCH_HOST_LIFETIME seconds, whatever it
    is doing. The thread blocks SIGINT and SIGTERM, so it never takes the host's signals."""
    seconds = float(os.environ.get("BENCH_HOST_LIFETIME") or DEFAULT_LIFETIME_SECONDS)

    def cap() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        time.sleep(seconds)
        os._exit(4)

    threading.Thread(target=cap, name="bench-lifetime-cap", daemon=True).start()


@contextlib.contextmanager
def _signal_wakeups() -> Iterator[int]:
    # Whichever thread the kernel gives a signal to, this pipe wakes the main thread,
    # so its Python handler runs at once. The same as slackonos_telemetry.run.signals,
    # kept here on purpose: the baseline hosts (plain SDK, no telemetry) use it too and
    # must not import any of the package they are compared with.
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end)
    try:
        yield read_end
    finally:
        signal.set_wakeup_fd(previous)
        os.close(read_end)
        os.close(write_end)


def serve_commands(handle: Callable[[list[str]], None]) -> None:
    """Call ``handle(words)`` for each line on stdin, until EOF."""
    pending = b""
    with _signal_wakeups() as wakeup:
        while True:
            ready = select.select([0, wakeup], [], [])[0]
            if wakeup in ready:
                with contextlib.suppress(BlockingIOError):
                    while os.read(wakeup, 512):
                        pass
            if 0 not in ready:
                continue
            chunk = os.read(0, 4096)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, _, pending = pending.partition(b"\n")
                words = line.decode("utf-8", "replace").split()
                if words:
                    handle(words)


def cpu_report() -> dict[str, float]:
    """CPU seconds of the whole process so far (every thread), and of its ended children."""
    times = os.times()
    return {
        "process": time.process_time(),
        "children": times.children_user + times.children_system,
    }


def build_app(
    slack_url: str, answered: Callable[[], None] | None = None, every_message: bool = False
) -> Any:
    """The host's own Bolt app: one ``ping`` listener that answers ``pong``.

    ``every_message``: and, after it, a listener that takes every other message and does
    nothing, as a bot that reads its channels has. Without one, Bolt answers a message
    no listener takes with a 404 and logs a warning for it.
    """
    from slack_bolt import App, Say
    from slack_sdk import WebClient

    app = App(
        client=WebClient(token=BOT_TOKEN, base_url=slack_url),
        signing_secret=SIGNING_SECRET,
        token_verification_enabled=False,
    )

    @app.message("ping")
    def ping(say: Say) -> None:
        say(text="pong")
        if answered is not None:
            answered()

    if every_message:

        @app.event("message")
        def read(body: dict[str, Any]) -> None:
            pass

    return app


def message_body(text: str, number: int, channel: str = "C0GENERAL") -> str:
    """An Events API ``message`` callback, as Slack sends it."""
    now = time.time()
    return json.dumps(
        {
            "token": "bench",
            "team_id": "T0LOCAL01",
            "api_app_id": "A0BENCH01",
            "type": "event_callback",
            "event_id": f"Ev{number:010d}",
            "event_time": int(now),
            "event": {
                "type": "message",
                "channel": channel,
                "channel_type": "channel",
                "user": "U0ADMIN01",
                "text": text,
                "ts": f"{int(now)}.{number:06d}",
            },
        }
    )
