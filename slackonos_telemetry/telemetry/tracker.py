"""The tracker: one config file's telemetry in this process, on a thread of its own.

What a host's thread pays is ``start()``: one thread started, nothing read, nothing
imported. The thread reads the settings, joins the instance (which may make
``startup``), makes heartbeats on the instance's schedule, and delivers the outbox;
it imports posthog only when there is something to send and the bot is quiet, so the
import never competes with the bot's first commands.

A tracker belongs to the process that made it (``tracker_for`` keeps one per config
file and process): a forked child never runs its parent's.

No failure ends the thread: each turn of its loop is guarded, a failure is logged
once, and the loop goes on with backoff.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from slackonos_telemetry._version import __version__
from slackonos_telemetry.config.settings import Settings, resolve_settings
from slackonos_telemetry.forksafe import PerProcess
from slackonos_telemetry.telemetry import consent, opt_out
from slackonos_telemetry.telemetry import shutdown as process_shutdown
from slackonos_telemetry.telemetry.delivery import Delivery, PassResult, RetryPolicy, StopReason
from slackonos_telemetry.telemetry.events import Event, EventName, RuntimeFacts, make_event
from slackonos_telemetry.telemetry.identity import ensure_instance_id, instance_id_now
from slackonos_telemetry.telemetry.log_once import OnceLog
from slackonos_telemetry.telemetry.membership import arrive
from slackonos_telemetry.telemetry.outbox import Outbox
from slackonos_telemetry.telemetry.quiet import QuietGate
from slackonos_telemetry.telemetry.release import resolve_release
from slackonos_telemetry.telemetry.session import ExitKind, InstanceSession
from slackonos_telemetry.telemetry.threads import PREFIX as TELEMETRY_THREAD_PREFIX
from slackonos_telemetry.telemetry.threads import start_thread

log = logging.getLogger(__name__)

# While events wait, how often a hand-edited opt-out is looked for.
CONFIG_POLL_SECONDS = 2.0
# While the bot is not yet quiet, how often to look again before loading the SDK.
_QUIET_POLL_SECONDS = 0.15


class Tracker:
    """The startup, heartbeat and shutdown events of one config file, delivered through its
    outbox. Thread-safe; ``start``, ``note_activity``, ``refresh`` and ``shutdown`` are
    cheap and never raise."""

    def __init__(
        self,
        config_path: Path,
        *,
        app_version: str | None = None,
        release: str | None = None,
        environ: Mapping[str, str] | None = None,
        retry_policy: RetryPolicy | None = None,
        quiet: QuietGate | None = None,
        debug_stream: TextIO | None = None,
    ) -> None:
        self.config_path = config_path
        self.app_version = app_version or __version__
        self._release_argument = release
        self._environ = environ
        self._retry_policy = retry_policy or RetryPolicy()
        self.quiet = quiet or QuietGate()
        self._debug_stream = debug_stream
        # Where state lives is decided once: a running bot never splits its outbox.
        self._place = self.settings_now().state
        self.outbox = Outbox(self._place)
        self.session = InstanceSession(self.outbox)
        self._once = OnceLog(log)
        self.delivery = Delivery(
            self.outbox, self.settings, self.instance_id_now, once_log=self._once
        )
        self._facts: RuntimeFacts | None = None
        self._facts_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._stop_result = False

    # -- from the host's threads: cheap, never raising --------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = start_thread(self._run, TELEMETRY_THREAD_PREFIX)

    @property
    def started_at(self) -> float:
        """When the bot started (monotonic): the run of a new instance counts from here."""
        return self.quiet.started_at

    def note_activity(self) -> None:
        self.quiet.note_activity()

    def refresh(self) -> None:
        """Settings changed in this process: act on them now, not at the next poll."""
        self._wake.set()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    @property
    def uptime_seconds(self) -> float:
        """The instance's run so far (this bot's, until it joined the instance)."""
        if self.session.joined:
            return self.session.seconds_running()
        return time.monotonic() - self.started_at

    def settings_now(self) -> Settings:
        return resolve_settings(self.config_path, self._environ)

    def settings(self) -> Settings:
        """The settings now, with the state place this tracker started with."""
        settings = self.settings_now()
        return settings if settings.state == self._place else replace(settings, state=self._place)

    def instance_id_now(self) -> str | None:
        return instance_id_now(self.settings())

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop now, delivering the shutdown event for at most ``timeout`` seconds
        (default TELEMETRY_SHUTDOWN_TIMEOUT). Idempotent, never raises. True when
        everything waiting was delivered (or nothing had to be)."""
        return process_shutdown.run(ExitKind.EXPLICIT.value, timeout, only=self)

    def stop_for_exit(self, deadline: float, how: str) -> bool:
        """The process is stopping (``shutdown.Participant``): leave the instance, making
        its shutdown event if this process is the last, and deliver until ``deadline``."""
        with self._stop_lock:
            first = not self._stopping.is_set()
            self._stopping.set()
            self._wake.set()
        if first:
            self._stop_result = self._finish(deadline, ExitKind(how))
            self._stopped.set()
        else:
            self._stopped.wait(max(0.0, deadline - time.monotonic()))
        return self._stopped.is_set() and self._stop_result

    # -- events ----------------------------------------------------------------------

    def facts(self) -> RuntimeFacts:
        """What every event says about where it runs (may run `git describe` once)."""
        with self._facts_lock:
            if self._facts is None:
                release = resolve_release(
                    self.settings_now().release_override, self._release_argument
                )
                self._facts = RuntimeFacts.gather(self.app_version, release)
            return self._facts

    def _emit(self, name: EventName, seconds_running: float) -> Event | None:
        """Called by the session under the outbox lock: the event to store, or None when
        telemetry is not on (or debug printed it)."""
        settings = self.settings()
        if not consent.decide(settings).enabled:
            return None
        instance_id = self.instance_id_now()
        if instance_id is None:
            return None
        event = make_event(name, instance_id, self.facts(), seconds_running)
        if settings.debug:
            # The payload as the SDK would send it (its own properties included): the
            # sender was prepared before this lock was taken.
            payload = self.delivery.prepare_sender(settings).prepare(event)
            stream = self._debug_stream or sys.stderr
            stream.write(json.dumps(payload, separators=(",", ":")) + "\n")
            stream.flush()
            return None
        return event

    def _ready_to_make_events(self) -> tuple[Settings, consent.Decision]:
        settings = self.settings()
        decision = consent.decide(settings)
        if decision.enabled:
            found = ensure_instance_id(settings)
            if found.problem:
                self._once.warning("no-id", "telemetry: %s", found.problem)
            self.facts()  # before any outbox lock: it may start `git describe`
            if settings.debug:
                self.delivery.prepare_sender(settings)  # likewise: it loads the SDK
        return settings, decision

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        settings = self.settings()
        for warning in settings.warnings:
            log.warning("telemetry: %s", warning)
        decision = consent.decide(settings)
        if decision.reason and not decision.enabled:
            log.info("telemetry off: %s", decision.reason)
        failures = 0
        next_attempt = next_beat = 0.0
        recorded = False
        while not self._stopping.is_set():
            now = time.monotonic()
            try:
                settings, decision = self._ready_to_make_events()
                if not self.session.joined and not self._stopping.is_set():
                    arrive(self.outbox.place)
                    self.outbox.trim()
                    self.session.join(self.started_at, self._emit)
                if not recorded and decision.enabled:
                    self._record_run()
                    recorded = True
                next_beat = self.session.heartbeat_if_due(settings.heartbeat_seconds, self._emit)
                waiting = self._handle_waiting(settings, decision, now, next_attempt)
                if waiting is not None:
                    failures = failures + 1 if waiting.should_retry else 0
                    delay = (
                        self._retry_policy.delay(failures, waiting.retry_after) if failures else 0
                    )
                    next_attempt = time.monotonic() + delay
            except Exception as exc:
                failures += 1
                self._once.warning(
                    "loop", "telemetry: %s: %s; trying again later", type(exc).__name__, exc
                )
                log.debug("telemetry loop failure", exc_info=True)
                next_attempt = time.monotonic() + self._retry_policy.delay(failures)
                next_beat = max(next_beat, next_attempt)
            else:
                if failures == 0:
                    self._once.forget("loop")
            wake_at = self._next_wake(settings, decision, next_beat, next_attempt)
            self._wake.wait(max(0.0, wake_at - time.monotonic()))
            self._wake.clear()

    def _record_run(self) -> None:
        """What this bot runs with, for the CLI's preview (in the state folder, not in the
        user's config)."""
        facts = self.facts()
        self.outbox.record(lastRun={"app_version": facts.app_version, "release": facts.release})

    def _handle_waiting(
        self, settings: Settings, decision: consent.Decision, now: float, next_attempt: float
    ) -> PassResult | None:
        """Empty the outbox after an opt-out; send it when due. None when nothing was tried."""
        if decision.consent is consent.Consent.OFF:
            cleared = opt_out.discard_waiting(settings, self.outbox, wire_wait=0.0)
            if cleared.discarded:
                log.info("telemetry off: discarded %d waiting event(s)", cleared.discarded)
            return None
        if not decision.enabled or settings.debug or now < next_attempt:
            return None
        if not self.outbox.stats().pending:
            return None
        if not self.delivery.sender_ready and not self.quiet.is_open(now):
            return None
        return self.delivery.run_pass(keep_going=lambda: not self._stopping.is_set())

    def _next_wake(
        self,
        settings: Settings,
        decision: consent.Decision,
        next_beat: float,
        next_attempt: float,
    ) -> float:
        now = time.monotonic()
        wake_at = next_beat if next_beat > 0 else now + settings.heartbeat_seconds
        if decision.enabled and not settings.debug and self.outbox.stats().pending:
            wake_at = min(wake_at, now + CONFIG_POLL_SECONDS)
            if self.delivery.sender_ready or self.quiet.is_open(now):
                wake_at = min(wake_at, max(next_attempt, now))
            else:
                wake_at = min(wake_at, now + _QUIET_POLL_SECONDS)
        elif self.outbox.stats().pending:
            wake_at = min(wake_at, now + CONFIG_POLL_SECONDS)  # an opt-out may come by hand
        return wake_at

    # -- stopping ----------------------------------------------------------------------

    def _finish(self, deadline: float, kind: ExitKind) -> bool:
        try:
            # Let the thread finish what it is doing (a send and its removal from the
            # outbox), so this process never leaves an accepted event to be sent again.
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()) / 2)
            settings, decision = self._ready_to_make_events()
            if not self.session.joined and self._thread is not None:
                # Stopped within the bot's first moments: it did start, so say so.
                arrive(self.outbox.place)
                self.session.join(self.started_at, self._emit, timeout=_until(deadline))
            ended = self.session.leave(kind, deadline, self._emit)
            if decision.consent is consent.Consent.OFF:
                # An opt-out at the very end leaves nothing.
                opt_out.discard_waiting(settings, self.outbox, wire_wait=0.0)
                return True
            if not ended or not decision.enabled or settings.debug:
                return True
            result = self.delivery.drain(deadline)
            return result.last is None or result.last.stopped_by is StopReason.EMPTY
        except Exception as exc:
            log.warning("telemetry shutdown event not delivered: %s; the bot is not affected", exc)
            return False


def _until(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


class _Trackers:
    def __init__(self) -> None:
        self.by_config: dict[str, Tracker] = {}
        self.guard = threading.Lock()


_trackers: PerProcess[_Trackers] = PerProcess(_Trackers)


def tracker_for(config_path: Path, **options: Any) -> tuple[Tracker, bool]:
    """This process's one running tracker for this config file; True when made just now."""
    trackers = _trackers.get()
    key = os.path.realpath(config_path)
    with trackers.guard:
        tracker = trackers.by_config.get(key)
        if tracker is not None and not tracker.stopped:
            return tracker, False
        tracker = trackers.by_config[key] = Tracker(config_path, **options)
    process_shutdown.participate(tracker)
    return tracker, True
