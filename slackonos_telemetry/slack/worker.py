"""The plugin's Slack work, off the ack path, on one daemon thread of its own.

Not the host's executor: a Web API that hangs then holds our thread, never one
the host's listeners need. A daemon thread: the interpreter's exit never waits
for it (a ThreadPoolExecutor's threads are joined at exit). One per process: a
forked child starts its own on its first command.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from slackonos_telemetry.forksafe import PerProcess
from slackonos_telemetry.telemetry.threads import start_thread

log = logging.getLogger(__name__)

THREAD_NAME = "slackonos-telemetry-slack"
MAX_WAITING = 100

Job = tuple[Callable[[], Any], "concurrent.futures.Future[Any]"]


class Worker:
    def __init__(self) -> None:
        self._jobs: queue.Queue[Job] = queue.Queue(MAX_WAITING)
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def submit(self, work: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Run ``work`` on the worker thread; its result or exception lands in the future.
        When too much waits already (Slack is hanging), the work is refused, logged."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._ensure_thread()
        try:
            self._jobs.put_nowait((work, future))
        except queue.Full:
            log.warning("telemetry: %d Slack answers already wait; dropped one", MAX_WAITING)
            future.set_exception(RuntimeError("too much Slack work waiting"))
        return future

    def _ensure_thread(self) -> None:
        with self._guard:
            if self._thread is None or not self._thread.is_alive():
                self._thread = start_thread(self._serve, THREAD_NAME)

    def _serve(self) -> None:
        while True:
            work, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(work())
            except BaseException as exc:  # the future carries it to whoever waits
                future.set_exception(exc)


_worker: PerProcess[Worker] = PerProcess(Worker)


def submit(work: Callable[[], Any]) -> concurrent.futures.Future[Any]:
    """Run ``work`` on this process's worker thread (see ``Worker.submit``)."""
    return _worker.get().submit(work)
