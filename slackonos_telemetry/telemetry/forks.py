"""Staying correct across ``os.fork()`` (gunicorn ``--preload``, multiprocessing).

A fork copies no threads (posthog-python issue #290 is exactly this): in the
child, our background threads are gone, and a lock one of them held at the
moment of the fork stays held forever. So the child, before anything else of
ours runs in it, forgets every lock and registry of the parent and lets each
part that owns threads start again (the callbacks registered here).

Imported by ``register()``: it imports nothing of ours until a child needs it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

_callbacks: list[Callable[[], None]] = []
_installed = False
_guard = threading.Lock()


def on_fork_in_child(callback: Callable[[], None]) -> None:
    """Run ``callback`` in every child forked from now on (each callback once)."""
    global _installed
    with _guard:
        if callback not in _callbacks:
            _callbacks.append(callback)
        if not _installed and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _installed = True


def _after_fork_in_child() -> None:
    global _guard
    _guard = threading.Lock()
    try:
        from slackonos_telemetry.config import locking
        from slackonos_telemetry.config.filecache import parsed_files
        from slackonos_telemetry.telemetry import membership, shutdown

        locking.reset_after_fork()
        parsed_files.reset_after_fork()
        membership.forget_arrivals_after_fork()
        shutdown.reset_after_fork()
    except Exception:  # a fork hook must never break the host's child
        log.exception("telemetry could not reset itself after a fork")
    for callback in list(_callbacks):
        try:
            callback()
        except Exception:
            log.exception("telemetry could not reset itself after a fork")
