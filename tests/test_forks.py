"""The plugin in a host that forks (ARCHITECTURE.md, forksafe): gunicorn ``--preload``,
multiprocessing pools, ``os.fork()`` from a thread, ``subprocess.Popen(preexec_fn=...)``.

A forked child never touches the parent's locks or threads, never half-imports a module
one of our threads was importing, runs nothing of the SDK's, and sends nothing; the
parent's instance goes on with exactly one startup and one shutdown.

Every test runs real processes (hosts in tests/support/hosts, gunicorn) against the
capture server on 127.0.0.1; every wait is bounded, and every process a host forked is
killed when the test ends, also when it fails. Each test names the defect of the
previous design (fe74213: an after-fork reset that imported our modules in the child and
restarted the plugin there) that it pins.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import pytest

from tests.support.capture import CaptureServer
from tests.support.environment import PYTHON, REPO
from tests.support.files import write_config
from tests.support.processes import Process, free_port, started
from tests.support.slack_api import SlackStandIn
from tests.support.trackers import exit_normally
from tests.support.waiting import wait_until, within

WAIT = 30.0  # any one step of a host (it forks, imports, delivers) on a loaded machine
SHUTDOWN_TIMEOUT = 2.0
DELAYS = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8"  # seconds after register()
CHILD_IMPORTS = ["posthog", "requests", "urllib3", "tinydb"]


# -- hosts -------------------------------------------------------------------------------


def plugin_env(capture: CaptureServer, **extra: str) -> dict[str, str]:
    env = {
        "TELEMETRY_HOST": capture.url,
        "TELEMETRY_API_KEY": "phc_fork_test",
        "TELEMETRY_SHUTDOWN_TIMEOUT": f"{SHUTDOWN_TIMEOUT:g}",
        "PYTHONPATH": str(REPO),
    }
    env.update(extra)
    return env


def new_config(folder: Path) -> Path:
    config = folder / "config.json"
    # The notice was shown before: nothing here reaches for Slack.
    write_config(config, {"telemetryNoticeShown": True})
    return config


@contextlib.contextmanager
def host(
    module: str, config: Path, *args: str, env: dict[str, str], before: tuple[str, ...] = ()
) -> Iterator[Process]:
    """``python -m tests.support.hosts.MODULE --config CONFIG [BEFORE] ARGS``."""
    command = [PYTHON, "-m", f"tests.support.hosts.{module}", "--config", str(config)]
    # The host leads a process group of its own, killed whole at the end: a child stuck
    # on a lock, or an orphaned pool worker, would outlive it and hold its pipes open.
    with started([*command, *before, *args], env=env, cwd=config.parent, group=True) as running:
        yield running


def startup_arrived(capture: CaptureServer, running: Process) -> None:
    """The host's startup event arrived: its tracker runs, the SDK is loaded and used."""
    assert capture.wait_for_events(1, "startup", WAIT), running.describe()


def assert_one_instance(capture: CaptureServer, running: Process) -> None:
    """Exactly one startup and one shutdown, of one instance."""
    assert capture.names.count("startup") == 1, f"{capture.names}\n{running.describe()}"
    assert capture.names.count("shutdown") == 1, f"{capture.names}\n{running.describe()}"
    assert len({event["distinct_id"] for event in capture.events}) == 1, capture.events


def foreign_log_lines(running: Process) -> list[str]:
    """Log lines of ours or of the SDK (the hosts log "PID NAME LEVEL: ...", ours at DEBUG)
    written by any process but the host itself: what our code, or the SDK's, did in a
    child."""
    found = []
    for line in running.lines("stderr"):
        pid, _, rest = line.partition(" ")
        ours = rest.startswith(("slackonos_telemetry", "posthog"))
        if ours and pid.isdigit() and int(pid) != running.pid:
            found.append(line)
    return found


def ended_after_sigterm(running: Process) -> int:
    """The exit code once SIGTERM has ended the process (bounded)."""
    code = running.wait_exit(WAIT)
    if code is None:
        pytest.fail(f"still running {WAIT:g} s after SIGTERM\n{running.describe()}")
    return code


# -- 1. gunicorn --preload -----------------------------------------------------------------

GUNICORN_STARTS = 20
GUNICORN_AT_ONCE = 4
GUNICORN_WORKERS = 3
# Longer than the test waits for anything: a worker hung at boot is never replaced (by
# --timeout) or killed (by --graceful-timeout) before the test has seen it.
GUNICORN_SLOW = 120
GUNICORN_SHUTDOWN_TIMEOUT = 0.5
READY = re.compile(r"^worker-ready (\d+)$")
BOOTING = re.compile(r"Booting worker with pid: (\d+)")


def gunicorn(port: int) -> list[str]:
    return [
        PYTHON,
        "-m",
        "gunicorn",
        "--config",
        "python:tests.support.hosts.gunicorn_ready",
        "--preload",
        "--workers",
        str(GUNICORN_WORKERS),
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        str(GUNICORN_SLOW),
        "--graceful-timeout",
        str(GUNICORN_SLOW),
        "tests.support.hosts.flask_host:flask_app",
    ]


def ready_workers(server: Process) -> set[int]:
    return {int(match[1]) for line in server.lines() if (match := READY.match(line))}


def one_gunicorn_start(folder: Path, env: dict[str, str]) -> str | None:
    """Start gunicorn --preload, wait for every worker to boot, SIGTERM the master; what
    went wrong, or None."""
    for attempt in range(PORT_ATTEMPTS):
        problem = gunicorn_start(folder / f"attempt{attempt}", env)
        if problem != PORT_TAKEN:
            return problem
    return f"no free port in {PORT_ATTEMPTS} attempts"


PORT_ATTEMPTS = 3
# free_port() closes its probe: another process may take the port before gunicorn binds.
PORT_TAKEN = "port taken"


def gunicorn_start(folder: Path, env: dict[str, str]) -> str | None:
    port = free_port()
    config = new_config(folder)
    env = {**env, "SLACKONOS_CONFIG": str(config)}
    # gunicorn_ready makes the master a process group leader: the group is killed at the end.
    with started(gunicorn(port), env=env, cwd=folder, group=True) as server:
        # Workers are forked once the master listens: their lines prove both.
        wait_until(
            lambda: len(ready_workers(server)) >= GUNICORN_WORKERS or server.poll() is not None,
            WAIT,
        )
        if server.poll() is not None and "Connection in use" in server.stderr:
            return PORT_TAKEN
        if len(ready_workers(server)) < GUNICORN_WORKERS:
            return f"a worker never booted\n{server.describe()}"
        server.signal(signal.SIGTERM)
        # The workers end at once on SIGTERM; then the master's exit hook gives the
        # shutdown event at most TELEMETRY_SHUTDOWN_TIMEOUT. Several start at once here.
        code = server.wait_exit(within(GUNICORN_SHUTDOWN_TIMEOUT) * GUNICORN_AT_ONCE)
        if code != 0:
            return f"the master did not end with 0 after SIGTERM\n{server.describe()}"
        booted = {int(pid) for pid in BOOTING.findall(server.stderr)}
        if booted != ready_workers(server) or len(booted) != GUNICORN_WORKERS:
            return f"a worker was replaced\n{server.describe()}"
    return None


def test_gunicorn_preload_boots_every_worker_every_time(tmp_path: Path) -> None:
    """Defect pinned: with --preload, a worker hung at boot in 8 of 10 starts: our
    at-fork hook imported a module whose import lock the plugin's start thread held in
    the master at the fork, so the worker never got past os.fork()."""
    with SlackStandIn() as slack, CaptureServer() as capture:
        env = plugin_env(
            capture,
            SLACK_BOT_TOKEN="xoxb-fork-test",
            SLACK_SIGNING_SECRET="fork-test-secret",
            SLACK_API_URL=slack.url,
            # The event's delivery is test_deployments' business: here only the boot and
            # the end of the processes are, and a short deadline keeps each start cheap.
            TELEMETRY_SHUTDOWN_TIMEOUT=f"{GUNICORN_SHUTDOWN_TIMEOUT:g}",
        )
        folders = [tmp_path / f"start{number}" for number in range(GUNICORN_STARTS)]
        # A few at a time, a new one as soon as one ends: the races are per process.
        with ThreadPoolExecutor(GUNICORN_AT_ONCE) as pool:
            starts = [pool.submit(one_gunicorn_start, folder, env) for folder in folders]
            for start in as_completed(starts):
                problem = start.result()
                if problem is not None:
                    for waiting in starts:
                        waiting.cancel()  # the starts not begun yet: one failure is enough
                    done = sum(1 for other in starts if other.done() and not other.cancelled())
                    pytest.fail(f"a start failed (of {done} done):\n{problem}")


# -- 2. forks while the plugin starts ----------------------------------------------------


@pytest.mark.parametrize(
    ("module", "method"),
    [("fork_host", "os.fork from a thread"), ("pool_host", "multiprocessing Pool")],
    ids=["os-fork-thread", "multiprocessing-pool"],
)
def test_children_forked_while_the_plugin_starts_finish_their_imports(
    tmp_path: Path, module: str, method: str
) -> None:
    """Defect pinned: a child forked in the plugin's first second deadlocked on
    ``import requests`` (~1 of 7-14 forks): a module lock the parent's thread held at the
    fork stayed held forever in the child. Two hosts at once: one lets the plugin start
    when quiet, one has it build at once, so the forks meet different imports."""
    with contextlib.ExitStack() as stack:
        runs = []
        for variant in ((), ("--start-now",)):
            capture = stack.enter_context(CaptureServer())
            config = new_config(tmp_path / f"host{len(runs)}")
            running = stack.enter_context(
                host(
                    module,
                    config,
                    "forks",
                    "--delays",
                    DELAYS,
                    env=plugin_env(capture),
                    before=variant,
                )
            )
            runs.append((capture, running))
        delays = DELAYS.split(",")
        for capture, running in runs:
            running.wait_for_messages("forks-done", timeout=2 * WAIT)
            forks = running.messages("fork-done")
            assert len(forks) == len(delays), running.describe()
            hung = [fork for fork in forks if fork["hung"]]
            assert hung == [], f"{method}: hung children {hung}\n{running.describe()}"
            if module == "fork_host":
                assert [fork["code"] for fork in forks] == [0] * len(delays), running.describe()
                children = running.messages("child")
                assert len(children) == len(delays), running.describe()
                assert all(child["imported"] == CHILD_IMPORTS for child in children)
            else:
                for fork in forks:
                    imported = [result["imported"] for result in fork["results"]]
                    assert imported == [CHILD_IMPORTS], running.describe()
            startup_arrived(capture, running)
        for capture, running in runs:
            exit_normally(running)
            assert_one_instance(capture, running)
            assert foreign_log_lines(running) == [], running.describe()


# -- 3. subprocess with preexec_fn -----------------------------------------------------------

POPENS = 100


def test_popen_with_preexec_fn_always_returns(tmp_path: Path) -> None:
    """Defect pinned: ``subprocess.Popen(preexec_fn=...)`` forks and runs the at-fork hooks
    (no vfork); our hook then imported a module our thread was importing, and the child
    hung before exec: 3 of 99 Popen calls never returned."""
    with CaptureServer() as capture:
        config = new_config(tmp_path)
        args = ("popen", "--count", str(POPENS))
        with host("fork_host", config, *args, env=plugin_env(capture)) as running:
            # The host goes on past POPENS until the SDK is loaded: the forks span the
            # plugin's start and its import of posthog.
            done = running.wait_for_messages("popens-done", timeout=2 * WAIT)[0]
            assert done["count"] >= POPENS
            assert [p["n"] for p in running.messages("popen")] == list(range(1, done["count"] + 1))
            startup_arrived(capture, running)
            exit_normally(running)
        assert_one_instance(capture, running)


# -- 4. with Pool() as pool --------------------------------------------------------------

POOLS = 10


def test_a_pools_exit_never_hangs_and_its_workers_die_of_sigterm(tmp_path: Path) -> None:
    """Defect pinned: ``with Pool() as p: p.map(...)`` after register(): the pool's exit
    sends its workers SIGTERM, and our handler, inherited, ran the plugin's shutdown in
    each (restarted there): 5 of ~119 exits hung forever and ~30% took the full shutdown
    deadline. Now the workers have the host's handlers back: they die of SIGTERM (or end
    on the pool's sentinel first) and nothing of ours runs in them.

    Found here too (1 run in ~10): a worker that got terminate()'s SIGTERM before its
    at-fork hook had put SIG_DFL back lost it and waited forever for a task, and so did
    the pool's exit (see the child test below for the fix)."""
    with CaptureServer() as capture:
        config = new_config(tmp_path)
        args = ("pools", "--count", str(POOLS))
        with host("pool_host", config, *args, env=plugin_env(capture)) as running:
            done = running.wait_for_messages("pools-done", timeout=2 * WAIT)[0]
            pools = running.messages("pool")
            assert len(pools) == done["count"] >= POOLS
            assert [pool for pool in pools if pool["hung"]] == [], running.describe()
            codes = {code for pool in pools for code in pool["exitcodes"]}
            # 0: the worker took the pool's sentinel before terminate() reached it.
            assert codes <= {-signal.SIGTERM, 0}, running.describe()
            assert -signal.SIGTERM in codes, "no worker was terminated: nothing was tested"
            startup_arrived(capture, running)
            exit_normally(running)
        assert foreign_log_lines(running) == [], running.describe()
        assert_one_instance(capture, running)


# -- 5. a child that gets SIGTERM early ----------------------------------------------------


def test_a_child_killed_by_sigterm_leaves_the_parents_instance_alone(tmp_path: Path) -> None:
    """Defect pinned: a forked child that got SIGTERM ran our handler, released the parent's
    membership (a shared flock, the same open file) and sent a shutdown; the parent then
    began a second instance with a second startup (3 of 3 runs).

    And one found with this test: a SIGTERM reaching a child before the at-fork hook had
    put the host's SIG_DFL back tripped our inherited Python handler, and CPython dropped
    it once SIG_DFL was in place: 23 of 30 children killed at once lived on (fixed by
    holding the signals across the fork, forksafe.hold_signals_across_fork)."""
    with CaptureServer() as capture:
        config = new_config(tmp_path)
        env = plugin_env(capture, TELEMETRY_HEARTBEAT_SECONDS="1")
        with host("fork_host", config, "serve", env=env) as running:
            startup_arrived(capture, running)
            running.send_line("fork-sleeper")
            child = running.wait_for_messages("child-up")[0]["pid"]
            os.kill(child, signal.SIGTERM)
            ended = running.wait_for_messages("child-exit")[0]
            assert ended["signal"] == signal.SIGTERM, running.describe()  # as without us
            instance_goes_on(capture, running)
            running.send_line("fork-and-kill")
            ends = running.wait_for_messages("killed")[0]["ends"]
            assert [end["signal"] for end in ends] == [signal.SIGTERM] * len(ends), ends
            instance_goes_on(capture, running)
            running.signal(signal.SIGTERM)
            assert ended_after_sigterm(running) == -signal.SIGTERM, running.describe()
        assert_one_instance(capture, running)
        assert foreign_log_lines(running) == [], running.describe()


def instance_goes_on(capture: CaptureServer, running: Process) -> None:
    """The parent's tracker goes round its loop twice more (a heartbeat a second), and no
    shutdown and no second startup came meanwhile: whatever a child's end caused would
    have shown by then. Nor did any code of ours run in a child (the old design ran the
    plugin's shutdown there: "pid CHILD left (signal)")."""
    beats = len(capture.events_named("heartbeat"))
    assert capture.wait_for_events(beats + 2, "heartbeat", WAIT), running.describe()
    assert foreign_log_lines(running) == [], running.describe()
    assert running.poll() is None, running.describe()
    assert capture.names.count("shutdown") == 0, f"{capture.names}\n{running.describe()}"
    assert capture.names.count("startup") == 1, f"{capture.names}\n{running.describe()}"


# -- 6. a pool kept for the host's whole life --------------------------------------------------


@pytest.mark.parametrize(
    ("own", "when", "code"),
    [("none", "at-start", -signal.SIGTERM), ("exit3", "once-running", 3)],
    ids=["default-action-pool-at-start", "own-handler-pool-once-running"],
)
def test_a_host_with_a_pool_sends_its_shutdown_on_sigterm(
    tmp_path: Path, own: str, when: str, code: int
) -> None:
    """Defect pinned: a host keeping a multiprocessing Pool: its workers counted as members
    of the instance and died without leaving it, so the parent, not the last member,
    sent no shutdown (4 of 4). The pool made right after register() (its workers forked
    while the plugin starts), or once the bot runs; the host's exit as without us."""
    with CaptureServer() as capture:
        config = new_config(tmp_path)
        args = ("keep", "--at-start") if when == "at-start" else ("keep",)
        with host(
            "pool_host", config, *args, env=plugin_env(capture), before=("--own", own)
        ) as running:
            startup_arrived(capture, running)
            if when == "once-running":
                running.send_line("pool")
            running.wait_for_messages("pool-up")
            running.signal(signal.SIGTERM)
            ended = ended_after_sigterm(running)
            # Killed by SIGTERM, the host leaves its pool's workers behind, as without us.
            running.kill_group()
            assert running.wait_exit(WAIT) == ended == code, running.describe()
        assert_one_instance(capture, running)


# -- 7. a child forked after the SDK was used ----------------------------------------------------


def test_a_child_forked_after_a_delivery_runs_no_thread_of_the_sdk(tmp_path: Path) -> None:
    """Defect pinned: the posthog client's own at-fork hook rebuilt its queues and started
    its threads (the feature-flag poller, logging a warning every 30 s forever) in every
    child of the host."""
    with CaptureServer() as capture:
        config = new_config(tmp_path)
        with host("fork_host", config, "serve", env=plugin_env(capture)) as running:
            startup_arrived(capture, running)  # posthog imported, its client built and used
            running.send_line("fork-threads")
            threads = running.wait_for_messages("child-threads")[0]
            ended = running.wait_for_messages("child-exit")[0]
            assert ended["code"] == 0, running.describe()
            assert threads["names"] == ["MainThread"], running.describe()
            exit_normally(running)
        assert foreign_log_lines(running) == [], running.describe()
        assert_one_instance(capture, running)
