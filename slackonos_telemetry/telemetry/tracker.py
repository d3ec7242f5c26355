"""The tracker: startup, heartbeat and shutdown events, delivered from a background thread.

What the bot's main thread pays is ``start()``: one thread started, nothing
read, nothing imported. The thread reads the settings, makes the events, and
imports posthog only when there is something to send and the bot has been
quiet for a moment, so the SDK's import never competes with the bot's first
commands for the GIL.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from slackonos_telemetry._version import __version__
from slackonos_telemetry.config.identity import ensure_instance_id, existing_instance_id
from slackonos_telemetry.config.paths import outbox_path_for
from slackonos_telemetry.config.settings import Settings, resolve_settings
from slackonos_telemetry.config.store import ConfigStore
from slackonos_telemetry.telemetry.delivery import Delivery, PassResult, RetryPolicy
from slackonos_telemetry.telemetry.events import (
    HEARTBEAT,
    SHUTDOWN,
    STARTUP,
    RuntimeFacts,
    make_event,
)
from slackonos_telemetry.telemetry.log_once import TELEMETRY_THREAD_PREFIX, OnceLog
from slackonos_telemetry.telemetry.outbox import Outbox
from slackonos_telemetry.telemetry.release import resolve_release

log = logging.getLogger(__name__)

# How long the bot must have been up, and quiet, before posthog is imported.
IMPORT_AFTER_SECONDS = 1.0
QUIET_SECONDS = 0.3
IMPORT_AT_LATEST_SECONDS = 10.0
# While events wait, how often a hand-edited opt-out is looked for.
CONFIG_POLL_SECONDS = 2.0


class Tracker:
    def __init__(
        self,
        config_path: Path,
        *,
        app_version: str | None = None,
        release: str | None = None,
        environ: Mapping[str, str] | None = None,
        retry_policy: RetryPolicy | None = None,
        import_after_seconds: float = IMPORT_AFTER_SECONDS,
        debug_stream: TextIO | None = None,
    ) -> None:
        self.config_path = config_path
        self.app_version = app_version or __version__
        self._release_argument = release
        self._environ = environ
        self._retry_policy = retry_policy or RetryPolicy()
        self._import_after = import_after_seconds
        self._debug_stream = debug_stream
        self.outbox = Outbox(outbox_path_for(config_path))
        self._once = OnceLog(log)
        self.delivery = Delivery(self.outbox, self.settings, once_log=self._once)
        self._facts: RuntimeFacts | None = None
        self._facts_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._shutdown_done = threading.Event()
        self._shutdown_lock = threading.Lock()
        self._shutdown_deadline: float | None = None
        self._startup_lock = threading.Lock()
        self._startup_made = False
        self.started_at = time.monotonic()
        self._last_activity = 0.0

    # -- called from the host's threads: cheap, never raising ---------------

    def start(self, started_at: float | None = None) -> None:
        """``started_at``: when the bot started (monotonic), if earlier than now."""
        if self._thread is not None:
            return
        self.started_at = time.monotonic() if started_at is None else started_at
        self._thread = threading.Thread(target=self._run, name=TELEMETRY_THREAD_PREFIX, daemon=True)
        self._thread.start()

    def note_activity(self) -> None:
        """The bot is handling something: the SDK import waits until it is quiet."""
        self._last_activity = time.monotonic()

    def refresh(self) -> None:
        """Settings changed in this process: act on them now, not at the next poll."""
        self._wake.set()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_at

    def settings(self) -> Settings:
        return resolve_settings(self.config_path, self._environ)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Make the shutdown event and try to deliver it, for at most ``timeout``
        seconds (default TELEMETRY_SHUTDOWN_TIMEOUT). Idempotent, never raises.
        True when everything waiting was delivered (or nothing had to be)."""
        try:
            with self._shutdown_lock:
                first_call = self._shutdown_deadline is None
                if self._shutdown_deadline is None:
                    seconds = self.settings().shutdown_timeout if timeout is None else timeout
                    self._shutdown_deadline = time.monotonic() + seconds
                deadline = self._shutdown_deadline
                self._stopping.set()
                self._wake.set()
            if first_call:
                self._start_shutdown_work(deadline)
            return self._shutdown_done.wait(max(0.0, deadline - time.monotonic()))
        except Exception:
            log.exception("telemetry shutdown failed")
            return False

    # -- events --------------------------------------------------------------

    def facts(self) -> RuntimeFacts:
        with self._facts_lock:
            if self._facts is None:
                release = resolve_release(self.settings().release_override, self._release_argument)
                self._facts = RuntimeFacts.gather(self.app_version, release)
            return self._facts

    def preview(self, name: str) -> dict[str, Any]:
        """The event ``name`` as it would be handed to the SDK now. Writes nothing
        while telemetry is off."""
        settings = self.settings()
        store = ConfigStore(self.config_path)
        if settings.enabled:
            instance_id = ensure_instance_id(store).value
        else:
            instance_id = existing_instance_id(store) or "(made on first use while enabled)"
        return make_event(name, instance_id, self.facts(), self.uptime_seconds)

    def _emit_startup_once(self) -> None:
        with self._startup_lock:
            if not self._startup_made:
                self._startup_made = True
                self._emit(STARTUP)

    def _emit(self, name: str) -> bool:
        """Make event ``name`` if telemetry is on: to the outbox, or in debug to stderr.
        False when nothing was made; never raises."""
        try:
            return self._make_event(name)
        except Exception as exc:
            self._once.warning("emit", "telemetry: could not record the %s event: %s", name, exc)
            return False

    def _make_event(self, name: str) -> bool:
        settings = self.settings()
        if not settings.enabled:
            return False
        store = ConfigStore(self.config_path)
        instance = ensure_instance_id(store)
        event = make_event(name, instance.value, self.facts(), self.uptime_seconds)
        if settings.debug:
            self._print_debug(event)
            return True

        def still_wanted() -> bool:
            if not self.settings().enabled:
                return False
            return not instance.persisted or existing_instance_id(store) == instance.value

        return self.outbox.add(event, still_wanted)

    def _print_debug(self, event: dict[str, Any]) -> None:
        stream = self._debug_stream or sys.stderr
        stream.write(json.dumps(event, separators=(",", ":")) + "\n")
        stream.flush()

    # -- the background thread ---------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:
            log.exception("telemetry stopped after an unexpected error; the bot is not affected")

    def _loop(self) -> None:
        settings = self.settings()
        for warning in settings.warnings:
            log.warning("telemetry: %s", warning)
        if settings.reason and not settings.enabled:
            log.info("telemetry off: %s", settings.reason)
        self._emit_startup_once()
        interval = settings.heartbeat_seconds
        next_heartbeat = self.started_at + interval
        failures = 0
        next_attempt = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= next_heartbeat:
                self._emit(HEARTBEAT)
                # On schedule from the start, never from "now": no drift, and
                # slots missed while asleep are skipped, not sent in a burst.
                while next_heartbeat <= now:
                    next_heartbeat += interval
            settings = self.settings()
            try:
                waiting = self._handle_waiting(settings, now, next_attempt)
            except Exception as exc:  # a broken outbox file or folder: back off, go on
                self._once.warning("loop", "telemetry: cannot use the outbox: %s", exc)
                waiting = PassResult(busy=True, stopped_by=str(exc))
            if waiting is not None:
                failures = failures + 1 if waiting.should_retry else 0
                retry_after = waiting.failure.retry_after if waiting.failure else None
                delay = self._retry_policy.delay(failures, retry_after) if failures else 0.0
                next_attempt = time.monotonic() + delay
            wake_at = self._next_wake(settings, next_heartbeat, next_attempt)
            self._wake.wait(max(0.0, wake_at - time.monotonic()))
            self._wake.clear()

    def _handle_waiting(
        self, settings: Settings, now: float, next_attempt: float
    ) -> PassResult | None:
        """Empty the outbox when off; send it when due. None when nothing was tried."""
        if not settings.enabled:
            discarded = self.outbox.clear()
            if discarded:
                log.info("telemetry off: discarded %d waiting event(s)", discarded)
            return None
        if settings.debug or now < next_attempt or not self.outbox.stats().pending:
            return None
        if not self.delivery.sender_ready and not self._may_import(now):
            return None
        return self.delivery.run_pass()

    def _may_import(self, now: float) -> bool:
        running = now - self.started_at
        if running >= IMPORT_AT_LATEST_SECONDS:
            return True
        return running >= self._import_after and now - self._last_activity >= QUIET_SECONDS

    def _next_wake(self, settings: Settings, next_heartbeat: float, next_attempt: float) -> float:
        now = time.monotonic()
        wake_at = next_heartbeat
        if settings.enabled and not settings.debug and self.outbox.stats().pending:
            wake_at = min(wake_at, now + CONFIG_POLL_SECONDS)
            if self.delivery.sender_ready:
                wake_at = min(wake_at, max(next_attempt, now))
            else:
                wake_at = min(wake_at, now + QUIET_SECONDS / 2)
        return wake_at

    # -- shutdown ---------------------------------------------------------------

    def _start_shutdown_work(self, deadline: float) -> None:
        # A thread of its own: the main thread (often inside a signal handler)
        # only waits, with a timeout, and never re-enters a lock it may hold.
        worker = threading.Thread(
            target=self._shutdown_work,
            args=(deadline,),
            name=f"{TELEMETRY_THREAD_PREFIX}-shutdown",
            daemon=True,
        )
        try:
            worker.start()
        except RuntimeError:  # threads can no longer start this late in exit
            self._shutdown_work(deadline)

    def _shutdown_work(self, deadline: float) -> None:
        try:
            if self._thread is not None:
                self._emit_startup_once()  # a bot stopped within its first moments
            if self._emit(SHUTDOWN):
                self.delivery.drain(deadline)
            elif not self.settings().enabled:
                self.outbox.clear()  # an opt-out at the very end leaves nothing behind
        except Exception:
            log.exception("telemetry shutdown event failed; the bot is not affected")
        finally:
            self._shutdown_done.set()


_trackers: dict[str, Tracker] = {}
_trackers_guard = threading.Lock()


def tracker_for(config_path: Path, **options: Any) -> tuple[Tracker, bool]:
    """The process's one tracker for this config file; True when made just now."""
    key = os.path.abspath(config_path)
    with _trackers_guard:
        tracker = _trackers.get(key)
        if tracker is not None and not tracker.stopped:
            return tracker, False
        tracker = _trackers[key] = Tracker(config_path, **options)
        return tracker, True
