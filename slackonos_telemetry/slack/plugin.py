"""The Bolt plugin: ``register(app)`` adds the telemetry commands to a Bolt ``App`` or
``AsyncApp``, starts the tracker off the host's threads and hooks shutdown.

What the host's main thread pays is small: one middleware added, the shutdown
hooks, one thread started. Everything else (the tracker, TinyDB, the command
machinery, the first-run notice) is built on that thread once the bot has been
up a moment and is quiet, so it never competes with the bot's first commands;
a telemetry command or a shutdown that comes sooner builds it on the spot.

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
from slackonos_telemetry.config.words import environment_disables, shutdown_timeout_from
from slackonos_telemetry.telemetry import forks
from slackonos_telemetry.telemetry import shutdown as process_shutdown
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
    """What the background start builds."""

    def __init__(self, tracker: Tracker, commands: AdminCommands, admin: AdminChannel) -> None:
        self.tracker = tracker
        self.commands = commands
        self.admin_channel = admin


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
        self.quiet = QuietGate()
        self._parts: _Parts | None = None
        self._parts_lock = threading.Lock()
        self._boot_now = threading.Event()
        self._booted = threading.Event()

    # -- on the host's thread: cheap ----------------------------------------------------

    def install(self) -> None:
        if self.is_async:
            from slackonos_telemetry.slack.async_middleware import AsyncTelemetryMiddleware

            self.app.use(AsyncTelemetryMiddleware(self))
        else:
            from slackonos_telemetry.slack.middleware import TelemetryMiddleware

            self.app.use(TelemetryMiddleware(self))
        forks.on_fork_in_child(_restart_plugins_after_fork)
        if not environment_disables(os.environ):
            # The environment cannot change under a running process: while it says
            # off, no event will ever be made, so there is nothing to hook or count.
            process_shutdown.participate(self)
            process_shutdown.install()
        self._start_boot()

    def _arrive(self) -> None:
        """Count this process in the instance at once, not once quiet: a busy worker may
        never be quiet."""
        if environment_disables(os.environ):
            return
        from slackonos_telemetry.config.paths import outbox_path_for
        from slackonos_telemetry.telemetry.membership import arrive

        try:
            arrive(outbox_path_for(self.config_path))
        except OSError as exc:  # the folder cannot be made: the tracker tries again later
            log.warning("telemetry could not join its instance yet: %s", exc)

    def start_now(self, timeout: float | None = None) -> bool:
        """Do the background start now instead of waiting for a quiet moment (for a
        host that knows it is idle, and for tests); True once it is done, notice
        included."""
        self._boot_now.set()
        return self._booted.wait(timeout)

    @property
    def answers_before_ack(self) -> bool:
        return bool(getattr(self.app, "process_before_response", False))

    def note_activity(self) -> None:
        self.quiet.note_activity()

    def handle(self, request: TelemetryRequest, slack: SlackPort) -> None:
        """Gate, run and answer one of the plugin's requests (off the ack path)."""
        from slackonos_telemetry.slack.handling import handle
        from slackonos_telemetry.slack.port import SlackUnavailable

        try:
            parts = self._built()
            handle(request, parts.commands, parts.admin_channel, slack)
        except SlackUnavailable as exc:
            log.warning("telemetry could not answer in Slack: %s", exc)
        except Exception:
            log.exception("telemetry command failed; the bot is not affected")

    def shutdown(self, timeout: float | None = None) -> bool:
        """The shutdown event, delivered within ``timeout`` (default
        TELEMETRY_SHUTDOWN_TIMEOUT). Idempotent, never raises."""
        seconds = shutdown_timeout_from(os.environ) if timeout is None else timeout
        return self.stop_for_exit(time.monotonic() + seconds, "explicit")

    def stop_for_exit(self, deadline: float, how: str) -> bool:
        """The process is stopping (``shutdown.Participant``). Never raises."""
        try:
            parts = self._built(wait=max(0.0, min(BUILD_WAIT_SECONDS, deadline - time.monotonic())))
            return parts.tracker.stop_for_exit(deadline, how)
        except TimeoutError:
            # Interrupted while this very thread was building the parts: the exit
            # hook, or the host's own clean-up, calls again once that is done.
            return False
        except Exception:
            log.exception("telemetry shutdown failed; the bot is not affected")
            return False

    @property
    def config_path(self) -> Path:
        from slackonos_telemetry.config.paths import resolve_config_path

        return resolve_config_path(self.config_argument, cwd=self._working_dir)

    # -- the parts, built once ---------------------------------------------------------

    @property
    def tracker(self) -> Tracker:
        return self._built().tracker

    @property
    def commands(self) -> AdminCommands:
        return self._built().commands

    @property
    def admin_channel(self) -> AdminChannel:
        return self._built().admin_channel

    def _built(self, wait: float | None = None) -> _Parts:
        parts = self._parts
        if parts is not None:
            return parts
        if not self._parts_lock.acquire(timeout=-1 if wait is None else wait):
            raise TimeoutError("telemetry is still starting")
        try:
            if self._parts is None:
                self._parts = self._build()
            return self._parts
        finally:
            self._parts_lock.release()

    def _build(self) -> _Parts:
        from slackonos_telemetry.slack.admin_channel import AdminChannel
        from slackonos_telemetry.slack.answers import AdminCommands
        from slackonos_telemetry.telemetry.tracker import tracker_for

        tracker, created = tracker_for(
            self.config_path, app_version=self.app_version, release=self._release, quiet=self.quiet
        )
        if created:
            tracker.start()
        return _Parts(tracker, AdminCommands(tracker), AdminChannel(self.config_path))

    # -- the background start ----------------------------------------------------------

    def _start_boot(self) -> None:
        start_thread(self._boot_when_quiet, BOOT_THREAD)

    def _boot_when_quiet(self) -> None:
        try:
            self._arrive()
            self.quiet.wait(self._boot_now)
            parts = self._built()
            self._greet(parts)
        except Exception:
            log.exception("telemetry could not start; the bot is not affected")
        finally:
            self._booted.set()

    def _greet(self, parts: _Parts) -> None:
        """The first-run notice, once: only now is it worth a Web API call."""
        client = getattr(self.app, "client", None)
        if parts.tracker.stopped or client is None or not getattr(client, "token", None):
            return  # shutting down, or a multi-workspace (OAuth) app: no one admin channel
        from slackonos_telemetry.slack.notice import post_first_run_notice
        from slackonos_telemetry.slack.port import async_port, sync_port

        slack = async_port(client, None) if self.is_async else sync_port(client)
        post_first_run_notice(parts.tracker, parts.admin_channel, slack)

    def _restart_after_fork(self) -> None:
        self._parts = None
        self._parts_lock = threading.Lock()
        self.quiet = QuietGate()
        self._boot_now = threading.Event()
        self._booted = threading.Event()
        self._start_boot()


def _is_async_app(app: Any) -> bool:
    # Never imported here: it needs aiohttp, which a sync host may not have. An app can
    # only be an AsyncApp if its module is already loaded.
    module = sys.modules.get("slack_bolt.app.async_app")
    return module is not None and isinstance(app, module.AsyncApp)


def _restart_plugins_after_fork() -> None:
    from slackonos_telemetry.slack.worker import worker
    from slackonos_telemetry.telemetry.tracker import forget_trackers_after_fork

    worker.reset_after_fork()
    forget_trackers_after_fork()
    for plugin in list(_plugins.values()):
        plugin._restart_after_fork()


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
