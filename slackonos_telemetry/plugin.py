"""The Bolt plugin: ``register(app)`` adds the admin commands, starts the tracker
and hooks shutdown, without blocking the host's start."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from slack_bolt import App

from . import __version__
from .admin_channel import AdminChannel
from .admin_commands import AdminCommands
from .config_path import resolve_config_path
from .first_run_notice import post_first_run_notice
from .log_once import TELEMETRY_THREAD_PREFIX
from .shutdown_hooks import install_shutdown_hooks
from .slack_middleware import AdminGate, CommandRouter, CommandRunner
from .tracker import Tracker, tracker_for

log = logging.getLogger(__name__)

_plugins: weakref.WeakKeyDictionary[App, TelemetryPlugin] = weakref.WeakKeyDictionary()
_plugins_guard = threading.Lock()


class TelemetryPlugin:
    """What ``register`` returns: the tracker, the commands and the admin channel."""

    def __init__(
        self,
        app: App,
        *,
        config_path: str | None = None,
        app_version: str | None = None,
        release: str | None = None,
    ) -> None:
        self.app = app
        self.config_path = resolve_config_path(config_path)
        self.app_version = app_version or __version__
        self.tracker: Tracker
        self.tracker, self._owns_tracker = tracker_for(
            self.config_path, app_version=self.app_version, release=release
        )
        self.admin_channel = AdminChannel(self.config_path)
        self.commands = AdminCommands(self.tracker, self.app_version)

    def install(self) -> None:
        for middleware in (CommandRouter(self), AdminGate(self), CommandRunner(self)):
            self.app.use(middleware)
        if self._owns_tracker:
            self.tracker.start()
            install_shutdown_hooks(self.tracker.shutdown)
        threading.Thread(
            target=self._greet, name=f"{TELEMETRY_THREAD_PREFIX}-notice", daemon=True
        ).start()

    def shutdown(self, timeout: float | None = None) -> bool:
        return self.tracker.shutdown(timeout)

    def _greet(self) -> None:
        """Off the main thread: learn the admin channel's ID, show the notice once."""
        try:
            client = self.app.client
            if not client.token:
                return  # multi-workspace (OAuth) apps have no single admin channel
            post_first_run_notice(self.tracker, self.admin_channel, client)
        except Exception:
            log.exception("telemetry first-run notice failed; the bot is not affected")


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
