"""Loading every plugin of the ``slackonos.plugins`` entry point group, as pytest and
Datasette load theirs: a plugin joins a host without the host changing."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

from slack_bolt import App

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "slackonos.plugins"


def load_plugins(app: App, **options: Any) -> list[Any]:
    """Call each plugin's entry point with ``app`` and ``options``; returns what each
    returned. A plugin that fails to load is logged and skipped: one broken plugin
    does not stop the bot."""
    loaded: list[Any] = []
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        try:
            plugin = entry_point.load()(app, **options)
        except Exception:
            log.exception("plugin %r (%s) failed to load", entry_point.name, entry_point.value)
            continue
        loaded.append(plugin)
    return loaded
