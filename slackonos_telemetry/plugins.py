"""Loading every plugin of the ``slackonos.plugins`` entry point group, as pytest and
Datasette load theirs: a plugin joins a host without the host changing.

Call it after the host's own ``app.use(...)`` middleware: a plugin's middleware
answers its own requests without passing them on, so only middleware added
before it sees them.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "slackonos.plugins"


def load_plugins(app: Any, **options: Any) -> list[Any]:
    """Call each plugin's entry point with ``app`` (a Bolt ``App`` or ``AsyncApp``) and
    ``options``; returns what each returned. A plugin that fails to load is logged and
    skipped: one broken plugin does not stop the bot. Scanning the installed
    distributions costs 15-30 ms; ``register`` alone skips it."""
    loaded: list[Any] = []
    try:
        found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    except Exception:
        log.exception("could not list the %s entry points", ENTRY_POINT_GROUP)
        return loaded
    for entry_point in found:
        try:
            plugin = entry_point.load()(app, **options)
        except Exception:
            log.exception("plugin %r (%s) failed to load", entry_point.name, entry_point.value)
            continue
        loaded.append(plugin)
    return loaded
