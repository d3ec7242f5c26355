"""A Bolt bot with the plugin registered that forks, as hosts do: ``os.fork()`` from a thread
of its own, ``subprocess.Popen(preexec_fn=...)``, a child it forks on demand.

    python -m tests.support.hosts.fork_host --config PATH forks --delays 0,0.1,...
    python -m tests.support.hosts.fork_host --config PATH popen --count 100
    python -m tests.support.hosts.fork_host --config PATH serve

Stdout: one JSON object a line, each with a ``kind`` (children print theirs too, with
their pid). Every mode then serves stdin: ``ping`` (answers ``pong``), ``fork-sleeper``
(a child that sleeps until a signal ends it; its end is reported as ``child-exit``),
``fork-and-kill`` (children sent SIGTERM the moment they are forked; ``killed``),
``fork-threads`` (a child that reports its threads, then ends), ``exit`` (a normal
exit). Logging goes to stderr, every line with its pid, the plugin's at DEBUG: whatever
our code does in a child shows up there under the child's pid.

Every wait is bounded: a child that does not finish within CHILD_LIMIT is reported
``hung`` and killed, and the host ends by itself after MAX_SECONDS. The host leads a
process group of its own, which the test kills whole at the end.

Shared by the other fork hosts (``pool_host``): ``say``, ``plugged_app``, ``serve``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

MAX_SECONDS = 60.0
CHILD_LIMIT = 20.0  # far longer than a child needs, even on a loaded machine
# What a host's child typically imports: the very modules our threads import in the
# parent (the SDK and its HTTP stack, TinyDB), so a lock left held would show here.
CHILD_IMPORTS = ("posthog", "requests", "urllib3", "tinydb")
EXIT_OWN_HANDLER = 3


def say(kind: str, **fields: Any) -> None:
    """One JSON line on stdout, in one write(2): whole even with children and threads
    writing too, and no lock, so a signal handler may say something (a lock taken here
    would deadlock a handler that runs while the main thread holds it)."""
    line = json.dumps({"kind": kind, "pid": os.getpid(), **fields}) + "\n"
    os.write(sys.stdout.fileno(), line.encode())


def own_process_group() -> None:
    """Lead a process group of its own: every process it forks is in it, so the test ends
    them all with one killpg, also orphans (a pool's workers outlive a host killed by a
    signal, and a child stuck on a lock would outlive anything)."""
    os.setpgrp()


def log_with_pids() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(process)d %(name)s %(levelname)s: %(message)s"
    )
    logging.getLogger("slackonos_telemetry").setLevel(logging.DEBUG)


def own_handlers(behaviour: str, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """The host's own handlers for ``signals``, installed before the plugin, as a bot does:
    ``exit3`` prints a ``handler`` line and, the first time, calls ``sys.exit(3)`` (once:
    a SystemExit raised again at each of a storm of signals would land anywhere in the
    interpreter's exit, which no plugin can tidy)."""
    if behaviour == "none":
        return
    exiting: list[bool] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        say("handler", signal=signum)
        if behaviour == "exit3" and not exiting:
            exiting.append(True)
            sys.exit(EXIT_OWN_HANDLER)

    for signum in signals:
        signal.signal(signum, handle)


def plugged_app(config: str) -> Any:
    """A Bolt App with the plugin registered; returns the plugin. Nothing reaches Slack."""
    from slack_bolt import App
    from slack_sdk import WebClient

    import slackonos_telemetry

    client = WebClient(token="xoxb-fork-host", base_url="http://127.0.0.1:9/api/")
    app = App(client=client, signing_secret="fork-host", token_verification_enabled=False)
    return slackonos_telemetry.register(app, config_path=config)


def start_now(plugin: Any) -> None:
    """Have the plugin build its parts (tracker, TinyDB) at once, not once quiet: its
    imports then run while the forks happen."""
    threading.Thread(target=plugin.start_now, args=(CHILD_LIMIT,), daemon=True).start()


def child_imports() -> list[str]:
    """In a child: import what a child typically does; the names imported."""
    for name in CHILD_IMPORTS:
        importlib.import_module(name)
    return list(CHILD_IMPORTS)


# -- children -------------------------------------------------------------------------


def fork_child(body: Callable[[], None]) -> int:
    """os.fork(); the child runs ``body`` and ends with os._exit (0, or 1 if it raised)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            body()
        except BaseException as exc:  # a child never returns into the parent's code
            say("child-error", error=f"{type(exc).__name__}: {exc}")
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def reap(pid: int, limit: float = CHILD_LIMIT) -> dict[str, Any]:
    """Wait (bounded) for child ``pid``; how it ended. A child still running at the limit
    is killed and reported hung."""
    deadline = time.monotonic() + limit
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return _status(status)
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"hung": True, "code": None, "signal": None}
        time.sleep(0.01)


def _status(status: int) -> dict[str, Any]:
    if os.WIFSIGNALED(status):
        return {"hung": False, "code": None, "signal": os.WTERMSIG(status)}
    return {"hung": False, "code": os.WEXITSTATUS(status), "signal": None}


def thread_names() -> list[str]:
    return sorted(thread.name for thread in threading.enumerate())


# -- modes --------------------------------------------------------------------------------


def forks_at(delays: Sequence[float], start: float) -> None:
    """From a thread of the host's own per delay: os.fork() ``delay`` seconds after
    ``start``; the child imports what children import."""

    def at(delay: float) -> None:
        time.sleep(max(0.0, start + delay - time.monotonic()))
        pid = fork_child(lambda: say("child", delay=delay, imported=child_imports()))
        say("fork-done", delay=delay, child=pid, **reap(pid))

    threads = [threading.Thread(target=at, args=(delay,)) for delay in delays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    say("forks-done", count=len(delays))


def popens(count: int) -> None:
    """``subprocess.Popen`` with a ``preexec_fn`` (which makes it fork, at-fork hooks and
    all, instead of vfork or posix_spawn), ``count`` times and on until the posthog SDK
    has been imported here, so the forks meet the plugin's imports."""
    started = 0
    while started < count or ("posthog" not in sys.modules and started < 10 * count):
        child = subprocess.Popen(["true"], preexec_fn=lambda: None)
        started += 1
        child.wait(CHILD_LIMIT)
        say("popen", n=started, posthog_loaded="posthog" in sys.modules)
    say("popens-done", count=started)


def fork_sleeper() -> None:
    """A child that sleeps until a signal ends it; its end is reported as ``child-exit``."""

    def sleep() -> None:
        say("child-up")
        time.sleep(MAX_SECONDS)

    pid = fork_child(sleep)
    threading.Thread(target=lambda: say("child-exit", child=pid, **reap(pid, MAX_SECONDS))).start()


def fork_and_kill(count: int = 20, sleep: float = 2.0) -> None:
    """``count`` children, each sent SIGTERM by the parent the moment os.fork() returns,
    so it arrives while the child is still in its first moments; how each ended. A
    child that missed it sleeps ``sleep`` seconds and ends with 0."""
    ends = []
    for _ in range(count):
        pid = fork_child(lambda: time.sleep(sleep))
        os.kill(pid, signal.SIGTERM)
        ends.append(reap(pid))
    say("killed", ends=ends)


def fork_threads() -> None:
    """A child that reports the threads running in it, then ends."""
    pid = fork_child(lambda: say("child-threads", names=thread_names()))
    say("child-exit", child=pid, **reap(pid))


COMMANDS: dict[str, Callable[[], None]] = {
    "ping": lambda: say("pong"),
    "fork-sleeper": fork_sleeper,
    "fork-threads": fork_threads,
    "fork-and-kill": fork_and_kill,
}


def serve(deadline: float) -> int:
    """Stdin commands, one a line, until ``exit``, end of input or ``deadline``."""
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sys.stdin], [], [], min(remaining, 0.5))
        if not readable:
            continue
        line = sys.stdin.readline()
        command = line.strip()
        if not line or command == "exit":
            return 0
        action = COMMANDS.get(command)
        if action is None:
            say("unknown", command=command)
        else:
            action()
    say("timeout")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--start-now", action="store_true", help="build the plugin at once")
    modes = parser.add_subparsers(dest="mode", required=True)
    forks = modes.add_parser("forks")
    forks.add_argument("--delays", required=True)
    popen = modes.add_parser("popen")
    popen.add_argument("--count", type=int, default=100)
    modes.add_parser("serve")
    args = parser.parse_args(argv)

    own_process_group()
    log_with_pids()
    deadline = time.monotonic() + MAX_SECONDS
    plugin = plugged_app(args.config)
    registered = time.monotonic()
    say("ready")
    if args.start_now:
        start_now(plugin)
    if args.mode == "forks":
        forks_at([float(delay) for delay in args.delays.split(",")], registered)
    elif args.mode == "popen":
        popens(args.count)
    return serve(deadline)


if __name__ == "__main__":
    sys.exit(main())
