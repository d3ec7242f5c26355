"""Logging that says a repeated problem once, not once per try.

An endpoint that is down meets every retry of every event; the bot's log must
show that once, and again only after things worked in between.
"""

from __future__ import annotations

import logging
import threading

from slackonos_telemetry.telemetry.threads import PREFIX as TELEMETRY_THREAD_PREFIX


class OnceLog:
    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._said: set[str] = set()
        self._guard = threading.Lock()

    def warning(self, key: str, message: str, *args: object) -> bool:
        """Log ``message`` unless ``key`` was logged since the last ``forget``."""
        with self._guard:
            if key in self._said:
                return False
            self._said.add(key)
        self._logger.warning(message, *args)
        return True

    def forget(self, key: str | None = None) -> None:
        """Let ``key`` (or every key) be logged again: the problem went away."""
        with self._guard:
            if key is None:
                self._said.clear()
            else:
                self._said.discard(key)


class RepeatedRecordFilter(logging.Filter):
    """For the SDK's own ``posthog`` logger: records raised on our telemetry
    threads pass once per message; the host's own use of posthog is untouched."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, int]] = set()
        self._guard = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.threadName or not record.threadName.startswith(TELEMETRY_THREAD_PREFIX):
            return True
        key = (str(record.msg), record.levelno)
        with self._guard:
            if key in self._seen:
                return False
            self._seen.add(key)
        return True


_sdk_filter = RepeatedRecordFilter()


def quiet_repeated_sdk_logs() -> None:
    logger = logging.getLogger("posthog")
    if _sdk_filter not in logger.filters:
        logger.addFilter(_sdk_filter)
