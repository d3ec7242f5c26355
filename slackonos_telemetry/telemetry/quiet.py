"""When background work may begin: once the bot has been up a moment and is quiet.

The plugin's background start and the tracker's import of the posthog SDK both
wait for this, so neither competes with the bot's first commands for the GIL.
"""

from __future__ import annotations

import threading
import time

# The bot up this long, and quiet this long; or this long up, whatever happens.
AFTER_SECONDS = 1.0
QUIET_SECONDS = 0.3
AT_LATEST_SECONDS = 10.0
POLL_SECONDS = 0.1


class QuietGate:
    def __init__(
        self, started_at: float | None = None, after_seconds: float = AFTER_SECONDS
    ) -> None:
        self.started_at = time.monotonic() if started_at is None else started_at
        self.after_seconds = after_seconds
        self.last_activity = 0.0

    def note_activity(self) -> None:
        """The bot is handling something: background work waits until it is quiet."""
        self.last_activity = time.monotonic()

    def is_open(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        running = now - self.started_at
        if running >= AT_LATEST_SECONDS:
            return True
        return running >= self.after_seconds and now - self.last_activity >= QUIET_SECONDS

    def wait(self, stop: threading.Event) -> None:
        """Until the gate opens or ``stop`` is set."""
        while not stop.is_set() and not self.is_open():
            stop.wait(POLL_SECONDS)
