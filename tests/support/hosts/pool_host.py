"""A Bolt bot with the plugin registered that uses ``multiprocessing`` (the fork start
method), as hosts do:

    python -m tests.support.hosts.pool_host --config PATH forks --delays 0,0.1,...
        a Pool made and mapped ``delay`` seconds after register(), one per delay, each
        on a thread of the host's own; its workers import what children import
    python -m tests.support.hosts.pool_host --config PATH pools --count 10
        ``with Pool() as pool: pool.map(...)``, ``count`` times and on until the posthog
        SDK is loaded here; each pool's workers' exit codes reported
    python -m tests.support.hosts.pool_host --config PATH [--own exit3] keep [--at-start]
        a Pool kept for the rest of the host's life, made right after register() or on
        the stdin command ``pool``

Output, stdin commands and logging as in ``fork_host``. A pool whose map or exit does
not finish within CHILD_LIMIT is reported ``hung``, its workers killed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.pool
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from tests.support.hosts.fork_host import (
    CHILD_LIMIT,
    COMMANDS,
    MAX_SECONDS,
    child_imports,
    log_with_pids,
    own_handlers,
    own_process_group,
    plugged_app,
    say,
    serve,
    start_now,
)

WORKERS = 2


def _in_worker(_task: int) -> dict[str, Any]:
    return {"pid": os.getpid(), "imported": child_imports()}


def _pid(_task: int) -> int:
    return os.getpid()


def _pool(workers: int = WORKERS) -> multiprocessing.pool.Pool:
    return multiprocessing.get_context("fork").Pool(workers)


def _kill_workers(pool: multiprocessing.pool.Pool) -> None:
    # A hung worker may not heed SIGTERM: the pool's terminate() would then wait forever.
    for worker in list(pool._pool):  # type: ignore[attr-defined]
        if worker.pid is not None and worker.exitcode is None:
            os.kill(worker.pid, signal.SIGKILL)


def _exit_bounded(pool: multiprocessing.pool.Pool) -> bool:
    """The pool's ``__exit__`` (terminate) on a thread, waited for at most CHILD_LIMIT;
    False (workers killed) if it did not return."""
    exiting = threading.Thread(target=pool.__exit__, args=(None, None, None), daemon=True)
    exiting.start()
    exiting.join(CHILD_LIMIT)
    if exiting.is_alive():
        _kill_workers(pool)
        exiting.join(CHILD_LIMIT)
        return False
    return True


def forks_at(delays: Sequence[float], start: float) -> None:
    def at(delay: float) -> None:
        time.sleep(max(0.0, start + delay - time.monotonic()))
        pool = _pool(1)  # one worker: its imports cost a third of a second each
        try:
            results = pool.map_async(_in_worker, range(1)).get(CHILD_LIMIT)
        except multiprocessing.TimeoutError:
            results = None
        exited = _exit_bounded(pool)
        say("fork-done", delay=delay, hung=results is None or not exited, results=results)

    threads = [threading.Thread(target=at, args=(delay,)) for delay in delays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    say("forks-done", count=len(delays))


def pools(count: int) -> None:
    made = 0
    while made < count or ("posthog" not in sys.modules and made < 10 * count):
        pool = _pool()
        workers = list(pool._pool)  # type: ignore[attr-defined]
        try:
            mapped = pool.map_async(_pid, range(2 * WORKERS)).get(CHILD_LIMIT) is not None
        except multiprocessing.TimeoutError:
            mapped = False
        exited = _exit_bounded(pool)
        for worker in workers:
            worker.join(CHILD_LIMIT)
        made += 1
        say(
            "pool",
            n=made,
            hung=not (mapped and exited),
            workers=[worker.pid for worker in workers],
            exitcodes=[worker.exitcode for worker in workers],
            posthog_loaded="posthog" in sys.modules,
        )
    say("pools-done", count=made)


def keep(deadline: float, at_start: bool) -> int:
    pools: list[multiprocessing.pool.Pool] = []

    def make() -> None:
        pools.append(_pool())
        say("pool-up", workers=sorted(set(pools[-1].map(_pid, range(4 * WORKERS)))))

    COMMANDS["pool"] = make
    try:
        if at_start:
            make()
        return serve(deadline)
    finally:  # a normal exit, or the host's own handler's sys.exit
        for pool in pools:
            pool.terminate()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--own", choices=("none", "exit3"), default="none")
    parser.add_argument("--start-now", action="store_true", help="build the plugin at once")
    modes = parser.add_subparsers(dest="mode", required=True)
    forks = modes.add_parser("forks")
    forks.add_argument("--delays", required=True)
    many = modes.add_parser("pools")
    many.add_argument("--count", type=int, default=10)
    kept = modes.add_parser("keep")
    kept.add_argument("--at-start", action="store_true")
    args = parser.parse_args(argv)

    own_process_group()
    log_with_pids()
    own_handlers(args.own)
    deadline = time.monotonic() + MAX_SECONDS
    plugin = plugged_app(args.config)
    registered = time.monotonic()
    say("ready")
    if args.start_now:
        start_now(plugin)
    if args.mode == "forks":
        forks_at([float(delay) for delay in args.delays.split(",")], registered)
    elif args.mode == "pools":
        pools(args.count)
    else:
        return keep(deadline, args.at_start)
    return serve(deadline)


if __name__ == "__main__":
    sys.exit(main())
