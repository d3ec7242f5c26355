"""The Bolt plugin: ``register(app)`` adds the admin commands, starts the tracker
and hooks shutdown.

What the host's main thread pays is kept under a millisecond: three middlewares
added, the shutdown hooks, one thread started. Everything else (the tracker,
TinyDB, the command machinery, the first-run notice) is loaded on that thread
once the bot has been up a moment and is quiet, so it never competes with the
bot's first commands; a telemetry command or a shutdown that comes sooner loads
it on the spot.
"""

from __future__ import annotations

import _thread
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from slackonos_telemetry._version import __version__
from slackonos_telemetry.slack.middleware import AdminGate, CommandRouter, CommandRunner

if TYPE_CHECKING:
    from pathlib import Path

    from slack_bolt import App

    from slackonos_telemetry.slack.admin_channel import AdminChannel
    from slackonos_telemetry.slack.answers import AdminCommands
    from slackonos_telemetry.telemetry.tracker import Tracker

log = logging.getLogger(__name__)

# When the background start may begin: the bot up this long, and quiet this long.
BOOT_AFTER_SECONDS = 1.0
QUIET_SECONDS = 0.3
BOOT_AT_LATEST_SECONDS = 10.0
_BOOT_POLL_SECONDS = 0.1
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
    """What ``register`` returns. ``tracker``, ``commands`` and ``admin_channel``
    are built on first use if the background start has not built them yet."""

    def __init__(
        self,
        app: App,
        *,
        config_path: str | None = None,
        app_version: str | None = None,
        release: str | None = None,
    ) -> None:
        self.app = app
        self._config_argument = config_path
        # The working directory now, since a relative path means "where the bot started".
        self._working_dir = os.getcwd()
        self.app_version = app_version or __version__
        self._release = release
        self.registered_at = time.monotonic()
        self.last_activity = 0.0
        self._parts: _Parts | None = None
        self._parts_lock = threading.Lock()
        self._boot_now = threading.Event()
        self._booted = threading.Event()

    # -- on the host's main thread: cheap ------------------------------------

    def install(self) -> None:
        for middleware in (CommandRouter(self), AdminGate(self), CommandRunner(self)):
            self.app.use(middleware)
        if not environment_turns_telemetry_off(os.environ):
            # The environment cannot change under a running process: while it says
            # off, no shutdown event will ever be made, so there is nothing to hook.
            from slackonos_telemetry.telemetry.shutdown import install_shutdown_hooks

            install_shutdown_hooks(self.shutdown)
        # The low-level start: threading.Thread.start() waits for the new thread to
        # run, a third of a millisecond of the host's start spent on nothing.
        _thread.start_new_thread(self._boot_when_quiet, ())

    def start_now(self, timeout: float | None = None) -> bool:
        """Do the background start now instead of waiting for a quiet moment (for a
        host that knows it is idle, and for tests); True once it is done, notice
        included."""
        self._boot_now.set()
        return self._booted.wait(timeout)

    def note_activity(self) -> None:
        self.last_activity = time.monotonic()
        parts = self._parts
        if parts is not None:
            parts.tracker.note_activity()

    def shutdown(self, timeout: float | None = None) -> bool:
        """The shutdown event, delivered within ``timeout`` (default
        TELEMETRY_SHUTDOWN_TIMEOUT). Idempotent, never raises."""
        began = time.monotonic()
        try:
            parts = self._built(wait=BUILD_WAIT_SECONDS if timeout is None else timeout)
            if timeout is None:
                timeout = parts.tracker.settings().shutdown_timeout
            return parts.tracker.shutdown(max(0.0, timeout - (time.monotonic() - began)))
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

        return resolve_config_path(self._config_argument, cwd=self._working_dir)

    # -- the parts, built once ----------------------------------------------------

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
            self.config_path, app_version=self.app_version, release=self._release
        )
        if created:
            tracker.note_activity()
            tracker.start(started_at=self.registered_at)
        admin = AdminChannel(self.config_path)
        return _Parts(tracker, AdminCommands(tracker, self.app_version), admin)

    # -- the background start ---------------------------------------------------

    def _boot_when_quiet(self) -> None:
        try:
            while not self._boot_now.is_set() and not self._quiet_enough():
                self._boot_now.wait(_BOOT_POLL_SECONDS)
            parts = self._built()
            self._greet(parts)
        except Exception:
            log.exception("telemetry could not start; the bot is not affected")
        finally:
            self._booted.set()

    def _quiet_enough(self) -> bool:
        now = time.monotonic()
        running = now - self.registered_at
        if running >= BOOT_AT_LATEST_SECONDS:
            return True
        return running >= BOOT_AFTER_SECONDS and now - self.last_activity >= QUIET_SECONDS

    def _greet(self, parts: _Parts) -> None:
        """Learn the admin channel's ID and show the first-run notice, once."""
        client = self.app.client
        if parts.tracker.stopped:
            return  # the bot is already shutting down: the next start shows it
        if not client.token:
            return  # multi-workspace (OAuth) apps have no single admin channel
        from slackonos_telemetry.slack.notice import post_first_run_notice

        post_first_run_notice(parts.tracker, parts.admin_channel, client)


def environment_turns_telemetry_off(env: Mapping[str, str]) -> bool:
    """DO_NOT_TRACK, or TELEMETRY_ENABLED set to anything but a true word (see
    settings.py, which decides, with reasons; this is the quick look at start)."""
    if env.get("DO_NOT_TRACK", "").strip().lower() not in ("", "0", "false"):
        return True
    word = env.get("TELEMETRY_ENABLED", "").strip().lower()
    return bool(word) and word not in ("true", "yes", "on", "1")


def register(
    app: App,
    *,
    config_path: str | None = None,
    app_version: str | None = None,
    release: str | None = None,
    **_ignored: Any,
) -> TelemetryPlugin:
    """Add telemetry to ``app``. Calling it again for the same app returns the
    plugin already there and adds nothing."""
    with _plugins_guard:
        existing = _plugins.get(app)
        if existing is not None:
            return existing
        plugin = TelemetryPlugin(
            app, config_path=config_path, app_version=app_version, release=release
        )
        _plugins[app] = plugin
    plugin.install()
    return plugin
