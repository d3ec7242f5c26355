"""gunicorn settings for the fork tests: each worker says, on stdout, that it has booted.

    gunicorn -c python:tests.support.hosts.gunicorn_ready ... APP

``post_worker_init`` runs in the worker once it is initialised, just before it starts
serving: a worker that hangs in an at-fork hook, or in its start, never says it. The
master leads a process group of its own (``on_starting``), which the test kills whole at
the end: a hung worker outlives its master.
"""

from __future__ import annotations

import os
import sys
from typing import Any

READY = "worker-ready"


def on_starting(server: Any) -> None:
    os.setpgrp()


def post_worker_init(worker: Any) -> None:
    sys.stdout.write(f"{READY} {os.getpid()}\n")
    sys.stdout.flush()
