"""Anonymous, opt-out usage telemetry for SlackONOS and any Bolt for Python bot.

Importing this package is cheap on purpose (a host imports it at start): the
Slack plugin, TinyDB and the posthog SDK are loaded only when used.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from slackonos_telemetry._version import __version__

__all__ = ["__version__", "load_plugins", "register"]

# A library logs, the host decides where it goes: without this, Python's last-resort
# handler would print our warnings on the host's (or the CLI's) stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from slackonos_telemetry.slack.plugin import TelemetryPlugin


def register(
    app: Any,
    *,
    config_path: str | os.PathLike[str] | None = None,
    app_version: str | None = None,
    release: str | None = None,
) -> TelemetryPlugin:
    """Add telemetry to a Bolt ``App`` or ``AsyncApp``: commands, status, tracker and
    shutdown hook. Never raises; calling it twice on one app adds nothing."""
    from slackonos_telemetry.slack.plugin import register as register_plugin

    return register_plugin(app, config_path=config_path, app_version=app_version, release=release)


def load_plugins(app: Any, **options: Any) -> list[Any]:
    """Register every plugin of the ``slackonos.plugins`` entry point group."""
    from slackonos_telemetry.plugins import load_plugins as load_all

    return load_all(app, **options)
