"""The Bolt plugin: ``register(app)`` adds the telemetry commands to a Bolt ``App`` or
``AsyncApp``, starts the tracker off the host's threads and hooks shutdown.

What the host's main thread pays is small: one middleware added, the shutdown hooks,
one thread started. Everything else (the tracker, TinyDB, the command machinery, the
first-run notice) is built on that thread once the bot has been up a moment and is
quiet, so it never competes with the bot's first commands; a telemetry command or a
shutdown that comes sooner builds it on the spot.

Only the process that called ``register`` tracks. Its parts (threads, locks, the
tracker) belong to it: a process forked from it (a gunicorn ``--preload`` worker, a
host's pool) builds its own parts for the commands it receives, with no tracker,
and so sends nothing; it joins the instance only by registering, the normal way.

No exception leaves ``register`` or anything the host's threads call.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from slackonos_telemetry._version import __version__
from slackonos_telemetry.config.words import shutdown_timeout_from
from slackonos_telemetry.forksafe import PerProcess, importing
from slackonos_telemetry.telemetry import shutdown as process_shutdown
from slackonos_telemetry.telemetry.consent import Consent, environment_decides
from slackonos_telemetry.telemetry.quiet import QuietGate
from slackonos_telemetry.telemetry.threads import start_thread

if TYPE_CHECKING:
    from pathlib import Path

    from slackonos_telemetry.slack.admin_channel import AdminChannel
    from slackonos_telemetry.slack.answers import AdminCommands
    from slackonos_telemetry.slack.port import SlackPort
    from slackonos_telemetry.slack.requests import TelemetryRequest
    from slackonos_telemetry.telemetry.tracker import Tracker

log = logging.getLogger(__name__)

BOOT_THREAD = "slackonos-telemetry-boot"
# How long a shutdown waits for a start that is under way (it takes ~30 ms).
BUILD_WAIT_SECONDS = 2.0

_plugins: weakref.WeakKeyDictionary[Any, TelemetryPlugin] = weakref.WeakKeyDictionary()
_plugins_guard = threading.Lock()


class _Parts:
    """What the start builds, in one process (a plain class: this module is loaded on
    the host's thread, where building a record type costs a fraction of a millisecond)."""

    def __init__(
        self, tracker: Tracker | None, commands: AdminCommands, admin_channel: AdminChannel
    ) -> None:
        self.tracker = tracker  # None where this process does not track (a forked child)
        self.commands = commands
        self.admin_channel = admin_channel


class _InProcess:
    """The plugin's state in one process."""

    def __init__(self) -> None:
        self.quiet = QuietGate()
        self.parts: _Parts | None = None
        self.parts_lock = threading.Lock()
        self.boot_now = threading.Event()
        self.booted = threading.Event()


class TelemetryPlugin:
    """What ``register`` returns. ``tracker``, ``commands`` and ``admin_channel`` are built
    on first use if the background start has not built them yet."""

    def __init__(
        self,
        app: Any,
        *,
        config_path: str | os.PathLike[str] | None = None,
        app_version: str | None = None,
        release: str | None = None,
    ) -> None:
        self.app = app
        self.is_async = _is_async_app(app)
        self.config_argument = config_path
        # The working directory now: a relative path means "where the bot started".
        self._working_dir = os.getcwd()
        self.app_version = app_version or __version__
        self._release = release
        self.owner_pid = os.getpid()  # the one process that tracks
        self._here: PerProcess[_InProcess] = PerProcess(_InProcess)

    # -- on the host's thread: cheap ----------------------------------------------------

    def install(self) -> None:
        if self.is_async:
            from slackonos_telemetry.slack.async_middleware import AsyncTelemetryMiddleware

            self.app.use(AsyncTelemetryMiddleware(self))
        else:
            from slackonos_telemetry.slack.middleware import TelemetryMiddleware

            self.app.use(TelemetryMiddleware(self))
        said = environment_decides(os.environ)
        if said in (Consent.OFF, Consent.WITHHELD):
            # The environment cannot change under a running process: no event will ever
            # be made here, so there is nothing to hook or count. An opt-out still empties
            # what an earlier run left waiting (off means off); a withheld one keeps it.
            if said is Consent.OFF:
                start_thread(self._discard_waiting, BOOT_THREAD)
            else:
                self._here.get().booted.set()
            return
        process_shutdown.participate(self)
        process_shutdown.install()
        start_thread(self._boot_when_quiet, BOOT_THREAD)

    @property
    def tracks_here(self) -> bool:
        return os.getpid() == self.owner_pid and environment_decides(os.environ) in (
            None,
            Consent.ON,
        )

    @property
    def quiet(self) -> QuietGate:
        return self._here.get().quiet

    def start_now(self, timeout: float | None = None) -> bool:
        """Do the background start now instead of waiting for a quiet moment (for a
        host that knows it is idle, and for tests); True once it is done, notice
        included. In a process that does not track, builds the command parts."""
        here = self._here.get()
        if not self.tracks_here:
            self._built()
            # The registering process may still be emptying its outbox (an opt-out).
            return os.getpid() != self.owner_pid or here.booted.wait(timeout)
        here.boot_now.set()
        return here.booted.wait(timeout)

    @property
    def answers_before_ack(self) -> bool:
        return bool(getattr(self.app, "process_before_response", False))

    def note_activity(self) -> None:
        self._here.get().quiet.note_activity()

    def handle(self, request: TelemetryRequest, slack: SlackPort) -> None:
        """Gate, run and answer one of the plugin's requests (off the ack path)."""
        try:
            parts = self._built()
            from slackonos_telemetry.slack.handling import handle  # loaded by the build

            handle(request, parts.commands, parts.admin_channel, slack)
        except Exception:
            log.exception("telemetry command failed; the bot is not affected")

    def shutdown(self, timeout: float | None = None) -> bool:
        """The shutdown event, delivered within ``timeout`` (default
        TELEMETRY_SHUTDOWN_TIMEOUT). Idempotent, never raises."""
        seconds = shutdown_timeout_from(os.environ) if timeout is None else timeout
        return process_shutdown.run("explicit", seconds, only=self)

    def stop_for_exit(self, deadline: float, how: str) -> bool:
        """The process is stopping (``shutdown.Participant``). Never raises."""
        if not self.tracks_here:
            return True
        try:
            parts = self._built(wait=max(0.0, min(BUILD_WAIT_SECONDS, deadline - time.monotonic())))
        except TimeoutError:
            return False  # still building when the deadline came
        except Exception:
            log.exception("telemetry shutdown failed; the bot is not affected")
            return False
        if parts.tracker is None:
            return True
        return parts.tracker.stop_for_exit(deadline, how)

    @property
    def config_path(self) -> Path:
        with importing():
            from slackonos_telemetry.config.paths import resolve_config_path

        return resolve_config_path(self.config_argument, cwd=self._working_dir)

    # -- the parts, built once per process -----------------------------------------------

    @property
    def tracker(self) -> Tracker | None:
        return self._built().tracker

    @property
    def commands(self) -> AdminCommands:
        return self._built().commands

    @property
    def admin_channel(self) -> AdminChannel:
        return self._built().admin_channel

    def _built(self, wait: float | None = None) -> _Parts:
        here = self._here.get()
        parts = here.parts
        if parts is not None:
            return parts
        if not here.parts_lock.acquire(timeout=-1 if wait is None else wait):
            raise TimeoutError("telemetry is still starting")
        try:
            if here.parts is None:
                here.parts = self._build(here.quiet)
            return here.parts
        finally:
            here.parts_lock.release()

    def _build(self, quiet: QuietGate) -> _Parts:
        # Everything the plugin uses from now on loads here, at module level of these,
        # so nothing of ours imports later; a fork meanwhile waits for it (forksafe).
        with importing():
            from slackonos_telemetry.slack import worker  # noqa: F401
            from slackonos_telemetry.slack.admin_channel import AdminChannel
            from slackonos_telemetry.slack.answers import AdminCommands
            from slackonos_telemetry.slack.handling import handle  # noqa: F401
            from slackonos_telemetry.slack.notice import note_notice_due
            from slackonos_telemetry.slack.port import sync_port  # noqa: F401
            from slackonos_telemetry.telemetry.tracker import tracker_for

        config_path = self.config_path
        tracker = None
        if self.tracks_here:
            tracker, created = tracker_for(
                config_path, app_version=self.app_version, release=self._release, quiet=quiet
            )
            if created:
                # Before the tracker can send: a notice about to go up holds sending.
                note_notice_due(config_path)
                tracker.start()
        commands = AdminCommands(
            config_path, app_version=self.app_version, release=self._release, tracker=tracker
        )
        return _Parts(tracker, commands, AdminChannel(config_path))

    # -- the background start ----------------------------------------------------------

    def _boot_when_quiet(self) -> None:
        here = self._here.get()
        try:
            self._arrive()
            here.quiet.wait(here.boot_now)
            parts = self._built()
            self._greet(parts)
        except Exception:
            log.exception("telemetry could not start; the bot is not affected")
        finally:
            here.booted.set()

    def _discard_waiting(self) -> None:
        """An opt-out in the environment: what waits from an earlier run never leaves."""
        here = self._here.get()
        try:
            with importing():
                from slackonos_telemetry.config.paths import state_place

            if not os.path.lexists(state_place(self.config_path).outbox):
                return  # nothing waits: nothing more to load
            with importing():
                from slackonos_telemetry.config.settings import resolve_settings
                from slackonos_telemetry.telemetry.opt_out import discard_waiting

            cleared = discard_waiting(resolve_settings(self.config_path), wire_wait=0.0)
            if cleared.discarded:
                log.info("telemetry off: discarded %d waiting event(s)", cleared.discarded)
        except Exception:
            log.exception("telemetry could not empty its outbox; nothing in it is sent")
        finally:
            here.booted.set()

    def _arrive(self) -> None:
        """Count this process in the instance at once, not once quiet: a busy worker may
        never be quiet. Light: no TinyDB."""
        with importing():
            from slackonos_telemetry.config.paths import state_place
            from slackonos_telemetry.telemetry.membership import arrive

        try:
            arrive(state_place(self.config_path))
        except OSError as exc:  # the tracker tries again, and says why once
            log.debug("telemetry could not join its instance yet: %s", exc)

    def _greet(self, parts: _Parts) -> None:
        """The first-run notice, once: only now is it worth a Web API call."""
        with importing():
            from slackonos_telemetry.slack.notice import post_first_run_notice, tell_in_log
            from slackonos_telemetry.slack.port import async_port, sync_port

        if parts.tracker is None or parts.tracker.stopped:
            return
        client = getattr(self.app, "client", None)
        if client is None or not getattr(client, "token", None):
            # A multi-workspace (OAuth) app has no one admin channel: the log is told.
            tell_in_log(parts.commands)
            return
        slack = async_port(client, None) if self.is_async else sync_port(client)
        post_first_run_notice(parts.commands, parts.admin_channel, slack)


def _is_async_app(app: Any) -> bool:
    # Never imported here: it needs aiohttp, which a sync host may not have. An app can
    # only be an AsyncApp if its module is already loaded.
    module = sys.modules.get("slack_bolt.app.async_app")
    return module is not None and isinstance(app, module.AsyncApp)


def register(
    app: Any,
    *,
    config_path: str | os.PathLike[str] | None = None,
    app_version: str | None = None,
    release: str | None = None,
    **_ignored: Any,
) -> TelemetryPlugin:
    """Add telemetry to ``app`` (a Bolt ``App`` or ``AsyncApp``). Calling it again for
    the same app returns the plugin already there and adds nothing. Never raises:
    a failure is logged and the bot runs without telemetry."""
    try:
        with _plugins_guard:
            existing = _plugins.get(app)
            if existing is not None:
                from slackonos_telemetry.config.paths import resolve_config_path

                asked = resolve_config_path(config_path) if config_path is not None else None
                if asked is not None and os.path.realpath(asked) != os.path.realpath(
                    existing.config_path
                ):
                    log.warning(
                        "telemetry is already registered on this app with config %s; "
                        "ignoring the second config %s",
                        existing.config_path,
                        config_path,
                    )
                return existing
            plugin = TelemetryPlugin(
                app, config_path=config_path, app_version=app_version, release=release
            )
            _plugins[app] = plugin
    except Exception:
        log.exception("telemetry could not be added to this app; the bot runs without it")
        return TelemetryPlugin(
            app, config_path=config_path, app_version=app_version, release=release
        )
    try:
        plugin.install()
    except Exception:
        log.exception("telemetry could not be added to this app; the bot runs without it")
    return plugin
